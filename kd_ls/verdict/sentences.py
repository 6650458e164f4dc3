"""The verdict's sentences: each comparison stated no more strongly than its family-wise interval
allows, and an undecided one with how far it is from a decision. Numbers are shown in percentage
points (pp) with two decimals; the data stay fractions."""
from __future__ import annotations

from typing import Any, Mapping

from kd_ls.verdict.cells import PLAIN_ALPHA
from kd_ls.verdict.stats import BETTER, NO_DIFFERENCE, WORSE


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


def distance_to_decision(entry: Mapping[str, Any]) -> str:
    """How far an undecided comparison is from a decision, in words."""
    if entry["family_low"] is None:
        if entry["df"] == 0 and entry.get("seeds", entry["n"]) > 1:
            return "no residual degrees of freedom: more seeds are needed before any interval exists"
        return "one seed gives no spread, so no interval: at least 2 seeds are needed"
    seeds = entry["seeds_needed"]
    needed = f"about {seeds} seeds" if seeds is not None else "more seeds than can be computed"
    return (f"smallest effect it could detect (80% power, family-wise) {pp(entry['mde'])} pp; "
            f"{needed} would resolve ±0.50 pp")


def intervals(entry: Mapping[str, Any], size: str) -> str:
    """'[family-wise CI ...; 95% CI ...], <size>' for one comparison."""
    return f"[family-wise CI {ci(entry, 'family_')}; 95% CI {ci(entry)}], {size}"


def comparison_sentence(subject: str, verb: str, reference: str, entry: Mapping[str, Any],
                        value: str = "mean", size: str | None = None) -> str:
    """One line stating a comparison by its family-wise word ('<subject> <verb> worse than ...')."""
    if entry.get("missing"):
        return f"{subject} vs {reference}: {entry['verdict']}, missing ({entry['missing']})"
    size = size or f"n={entry['n']}"
    word, amount = entry["verdict"], entry[value]
    if word in (WORSE, BETTER):
        return f"{subject} {verb} {word} than {reference} by {pp(abs(amount))} pp {intervals(entry, size)}"
    if word == NO_DIFFERENCE:
        return (f"{subject} {verb} not detectably different from {reference}: "
                f"{pp(amount, True)} pp {intervals(entry, size)}")
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
    """One line per measure: what Müller's account predicts, whether it holds, and r per T."""
    per_t = "; ".join(
        f"T={row['temperature']:g}: r={'n/a' if row['r'] is None else format(row['r'], '+.2f')} "
        f"family-wise {number_ci(row, 'family_')}, n={row['n']}, {row['verdict']}"
        for row in rows)
    sign = conclusion["predicted_sign"]
    outcome = conclusion["conclusion"]
    outcome = "not shown (no correlation decided)" if outcome == "not shown" else outcome
    predicted = ("no prediction from Müller's account" if sign is None
                 else f"Müller's account predicts {_PREDICTION[sign]}: {outcome}")
    return f"Mechanism, {conclusion['label']}: {predicted} ({per_t or 'no data'})"


def summary(verdict: Mapping[str, Any]) -> list[str]:
    """Short one-line statements of every comparison and conclusion in the verdict."""
    family = verdict["family"]
    lines = [f"Words are decided by family-wise 95% intervals (Bonferroni over m={family['m']} comparisons, "
             f"each at {100 * family['per_comparison_level']:.2f}%); 'no detectable difference' needs a "
             f"half-width of at most {pp(family['resolution'])} pp"]
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
    mechanism = verdict["mechanism"]
    lines += [mechanism_sentence(c, [r for r in mechanism["rows"] if r["measure"] == c["measure"]])
              for c in mechanism["conclusions"]]
    if verdict["failed"]:
        lines.append(f"{verdict['failed']} failed run(s) left out")
    return lines
