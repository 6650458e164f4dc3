"""The verdict's sentences: the headline (the primary answer, its precondition, what they mean and
what to do next), and each secondary comparison stated no more strongly than Holm allows, an
undecided one with how far it is from a decision. Numbers are shown in percentage points (pp) with
two decimals; the data stay fractions (the primary's own numbers are in pp already)."""
from __future__ import annotations

from typing import Any, Mapping

from kd_ls.verdict.cells import PLAIN_ALPHA
from kd_ls.verdict.stats import BETTER, WORSE


def pp(fraction: float | None, signed: bool = False) -> str:
    """A fraction as percentage points with two decimals; 'n/a' when unknown."""
    if fraction is None:
        return "n/a"
    return f"{100 * fraction:+.2f}" if signed else f"{100 * fraction:.2f}"


def ci(entry: Mapping[str, Any], prefix: str = "") -> str:
    """'[low, high]' in pp from the entry's ``<prefix>low`` / ``<prefix>high``, or 'n/a'."""
    low, high = entry.get(f"{prefix}low"), entry.get(f"{prefix}high")
    return "n/a" if low is None or high is None else f"[{pp(low)}, {pp(high)}]"


def student_label(alpha: float, temperature: float | None) -> str:
    """Human name of a distilled student."""
    teacher = "plain-teacher" if alpha == PLAIN_ALPHA else f"LS-teacher (alpha={alpha:g})"
    at = "T=?" if temperature is None else f"T={temperature:g}"
    return f"{teacher} student at {at}"


def p_text(p: float | None) -> str:
    """A p-value in words: 'p = 0.012', 'p < 0.001', or 'p n/a'."""
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def distance_to_decision(entry: Mapping[str, Any]) -> str:
    """How far an undecided comparison is from a decision, in words."""
    if entry["family_low"] is None:
        if entry["df"] == 0 and entry.get("seeds", entry["n"]) > 1:
            return "no residual degrees of freedom: more seeds are needed before any interval exists"
        return "one seed gives no spread, so no interval: at least 2 seeds are needed"
    seeds = entry["seeds_needed"]
    needed = f"about {seeds} seeds" if seeds is not None else "more seeds than can be computed"
    return (f"smallest effect it could detect (80% power, Bonferroni level) {pp(entry['mde'])} pp; "
            f"{needed} would bring its family-wise half-width to ±0.50 pp")


def intervals(entry: Mapping[str, Any], size: str) -> str:
    """'(95% CI ... exploratory; family-wise CI ...; Holm p ...), <size>' for one comparison."""
    return (f"(95% CI {ci(entry)}, exploratory; family-wise CI {ci(entry, 'family_')}; Holm {p_text(entry['p_holm'])}), "
            f"{size}")


def comparison_sentence(subject: str, verb: str, reference: str, entry: Mapping[str, Any],
                        value: str = "mean", size: str | None = None) -> str:
    """One line stating a secondary comparison by its Holm word ('<subject> <verb> worse than ...')."""
    if entry.get("missing"):
        return f"{subject} vs {reference}: {entry['verdict']}, missing ({entry['missing']})"
    size = size or f"n={entry['n']}"
    word, amount = entry["verdict"], entry[value]
    if word in (WORSE, BETTER):
        return f"{subject} {verb} {word} than {reference} by {pp(abs(amount))} pp {intervals(entry, size)}"
    return (f"{subject} vs {reference}: {word}, {pp(amount, True)} pp {intervals(entry, size)}; "
            f"{distance_to_decision(entry)}")


def number_ci(entry: Mapping[str, Any], prefix: str = "", digits: int = 2, signed: bool = True) -> str:
    """'[low, high]' of a plain number (a slope, a correlation), or 'n/a'."""
    low, high = entry.get(f"{prefix}low"), entry.get(f"{prefix}high")
    spec = f"{'+' if signed else ''}.{digits}f"
    return "n/a" if low is None or high is None else f"[{low:{spec}}, {high:{spec}}]"


def matched_sentence(entry: Mapping[str, Any]) -> str:
    """The accuracy-matched comparison at one T, with the slope it relies on."""
    subject = f"T={entry['temperature']:g}, teacher accuracy held equal: LS-teacher (alpha={entry['alpha']:g}) students"
    line = comparison_sentence(subject, "are", "plain-teacher students", entry, value="effect",
                               size=f"df={entry['df']}, n={entry['n']}")
    slope = entry["slope"]
    if slope["value"] is not None:
        line += f" (slope on teacher accuracy {slope['value']:+.2f}, 95% CI {number_ci(slope)})"
    return line


_PREDICTION = {-1: "smaller gains from higher values", +1: "smaller gains from lower values"}


def mechanism_sentence(conclusion: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> str:
    """One line per measure: what Müller's account predicts, what the exploratory correlations show,
    and r per T."""
    per_t = "; ".join(
        f"T={row['temperature']:g}: r={'n/a' if row['r'] is None else format(row['r'], '+.2f')} "
        f"95% CI {number_ci(row)}, n={row['n']}, {row['verdict']}"
        for row in rows)
    sign = conclusion["predicted_sign"]
    outcome = {"not shown": "not shown (no 95% interval excludes 0)"}.get(conclusion["conclusion"], conclusion["conclusion"])
    predicted = ("no prediction from Müller's account" if sign is None
                 else f"Müller's account predicts {_PREDICTION[sign]}: {outcome}, exploratory")
    return f"Mechanism, {conclusion['label']}: {predicted} ({per_t or 'no data'})"


def secondary_rows(verdict: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], str]]:
    """Every secondary comparison as (short label, entry, value key), in the order tables show them."""
    best = verdict["mueller"]["best_temperature"]
    plain_t = "?" if best is None else f"{best:g}"
    rows = [(f"T={e['temperature']:g} a={e['alpha']:g} vs plain", e, "mean") for e in verdict["paired"]]
    rows += [(f"Müller a={e['alpha']:g} T=1 vs plain T={plain_t}", e, "mean") for e in verdict["mueller"]["ls_vs_plain"]]
    rows += [(f"Müller a={e['teacher_alpha']:g} T={'?' if e['temperature'] is None else format(e['temperature'], 'g')}"
              f" vs alone+LS", e, "mean") for e in verdict["mueller"]["vs_ls_baseline"]]
    rows += [(f"T={e['temperature']:g} a={e['alpha']:g} equal teacher acc", e, "effect")
             for e in verdict["accuracy_matched"]]
    rows += [(f"{e['loss']}: LS vs plain" if e["kind"] == "loss" else f"{e['loss']} minus {e['reference_loss']}", e,
              "mean") for e in verdict.get("losses", [])]
    return rows


_ANSWER = {WORSE: "LS teachers give worse students", BETTER: "LS teachers give better students",
           "undecided": "undecided"}
_PRECONDITION = {"helps": "distillation from the plain teacher helps", "hurts": "distillation from the plain teacher "
                 "hurts", "undecided": "whether distillation from the plain teacher helps is undecided"}
_MEANING = {WORSE: "this supports Müller et al.'s claim in this setting",
            BETTER: "this goes against Müller et al.'s claim in this setting",
            "equivalent": "LS teachers make no difference larger than the margin here",
            "undecided": "the study cannot say yet"}


def _numbers(entry: Mapping[str, Any]) -> str:
    """'+3.18 pp [2.48, 3.89] (95% CI), n = 3 seeds, p = 0.003'."""
    low, high = entry["ci_pp"]
    interval = "no interval" if low is None else f"[{low:+.2f}, {high:+.2f}] ({100 * entry['level']:.4g}% CI)"
    value = "n/a" if entry["estimate_pp"] is None else f"{entry['estimate_pp']:+.2f} pp"
    return f"{value} {interval}, n = {entry['n']} seeds, {p_text(entry['p'])}"


def _grid_text(grid: Mapping[str, Any]) -> str:
    alphas = ", ".join(f"{a:g}" for a in grid["alphas"])
    temperatures = ", ".join(f"{t:g}" for t in grid["temperatures"])
    return f"alpha {alphas}; T {temperatures}; loss {grid['loss']}"


def headline(verdict: Mapping[str, Any]) -> str:
    """One paragraph: the primary answer in words and numbers, the precondition, what they mean for
    the claim, and what to do next."""
    primary, pre, design = verdict["primary"], verdict["precondition"], verdict["design"]
    declaration = design["declarations"][-1]
    margin = f"±{primary['margin_pp']:.2g} pp"
    answer = (f"no difference larger than {margin}" if primary["word"] == "equivalent" else _ANSWER[primary["word"]])
    look = ("no planned look reached yet" if primary["look"] is None
            else f"look {primary['look']} of {primary['looks_planned']}, alpha {primary['alpha']:.3g}")
    parts = [f"Primary ({_grid_text(primary['grid'])}): {answer}, {_numbers(primary)} ({look})."]
    if primary.get("why"):
        parts.append(f"Note: {primary['why']}.")
    if declaration["redeclared_after_look"]:
        parts.append(f"The primary was re-declared after {len(declaration['looks_before'])} look(s) (its design changed "
                     f"after results were seen); it tests with the alpha those looks left "
                     f"({declaration['alpha_budget']:.3g}).")
    pre_word = (f"distillation makes no difference larger than {margin}" if pre["word"] == "equivalent"
                else _PRECONDITION[pre["word"]])
    parts.append(f"Precondition: {pre_word}, {pre['why']}." if pre.get("why") else
                 f"Precondition: {pre_word}, {_numbers(pre)}.")
    if pre["word"] == "helps":
        parts.append(f"The study is in the claim's regime: {_MEANING[primary['word']]}.")
    else:
        parts.append("So this study is outside the claim's regime: the primary says how LS teachers' students "
                     "compare here, not whether LS erases knowledge that distillation would transfer.")
    parts.append(f"Next: {_next_step(verdict)}")
    return " ".join(parts)


def _next_step(verdict: Mapping[str, Any]) -> str:
    """What to do after reading the headline."""
    primary, design = verdict["primary"], verdict["design"]
    planned = design["schedule"]
    if primary["word"] == "undecided":
        left = [n for n in planned if primary["look"] is None or n > planned[primary["look"] - 1]]
        if left:
            return f"run the study again to reach its planned looks (at {', '.join(map(str, left))} seeds)."
        needed = primary.get("seeds_needed")
        size = f"; about {needed} seeds would decide an effect of this size" if needed else ""
        return ("this study's planned looks have spent its 5%, so more seeds here decide nothing; plan them "
                f"before looking, in a new study folder with --until-decided --max-seeds N{size}."
                if design["alpha"] - design["alpha_spent"] <= 1e-12 else
                f"add seeds with --until-decided{size}.")
    if verdict["precondition"]["word"] != "helps":
        return "find a regime where distillation helps (longer student training, consistent teaching) before reading " \
               "the primary as a test of the claim."
    return "the secondaries below say at which temperature and alpha (Holm-controlled, 95% intervals exploratory)."


def summary(verdict: Mapping[str, Any]) -> list[str]:
    """Short one-line statements of every secondary comparison and exploratory conclusion."""
    family = verdict["family"]
    lines = [f"Secondaries: {family['m']} comparisons decided together by Holm at 5%; each 95% interval is "
             "exploratory, each family-wise interval (Bonferroni) holds for all of them together"]
    lines += [comparison_sentence(f"T={e['temperature']:g}: LS-teacher (alpha={e['alpha']:g}) students", "are",
                                  "plain-teacher students", e) for e in verdict["paired"]]
    mueller = verdict["mueller"]
    best = mueller["best_temperature"]
    if best is not None:
        lines.append(f"Müller: plain teacher's best T by mean val_acc is T={best:g}")
    lines += [comparison_sentence(f"Müller: {student_label(e['alpha'], e['ls_temperature'])}", "is",
                                  student_label(PLAIN_ALPHA, best), e) for e in mueller["ls_vs_plain"]]
    lines += [comparison_sentence(f"Müller: {student_label(e['teacher_alpha'], e['temperature'])}", "is",
                                  f"the student alone with LS (alpha={e['baseline_alpha']:g})", e)
              for e in mueller["vs_ls_baseline"]]
    lines += [f"Müller: {note}" for note in mueller["notes"]]
    lines += [matched_sentence(e) for e in verdict["accuracy_matched"]]
    lines += [comparison_sentence(f"Loss {e['loss']}: LS-teacher students", "are", "plain-teacher students", e)
              if e["kind"] == "loss" else
              comparison_sentence(f"Loss x LS: the LS effect under {e['loss']}", "is",
                                  f"the LS effect under {e['reference_loss']}", e)
              for e in verdict.get("losses", [])]
    mechanism = verdict["mechanism"]
    lines += [mechanism_sentence(c, [r for r in mechanism["rows"] if r["measure"] == c["measure"]])
              for c in mechanism["conclusions"]]
    if verdict["failed"]:
        lines.append(f"{verdict['failed']} failed run(s) left out")
    return lines
