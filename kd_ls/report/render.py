"""verdict.md: the verdict's data (kd_ls.verdict) as markdown a researcher can paste, and the same
verdict as plain text for a terminal (no markup, 80 columns).

Both open with the headline (the primary answer, the precondition, what it means, what next), then
one compact table of the secondaries (Holm-decided; 95% intervals exploratory), then details.
Accuracies and differences are in percent / percentage points with two decimals; per-seed values
sit in a collapsed appendix.
"""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

from kd_ls.verdict.sentences import PLAIN_ALPHA, ci, number_ci, p_text, pp, secondary_rows, student_label

_DIFFERENCE_HEADER = ["diff (pp)", "95% CI (pp), exploratory", "family-wise CI (pp)", "Holm p", "n", "MDE (pp)",
                      "seeds for ±0.5 pp", "verdict"]
WIDTH = 80  # the terminal text's width
_CONCLUSIONS = {"holds": "holds, exploratory (a 95% interval of the predicted sign, none against)",
                "contradicted": "contradicted, exploratory (a 95% interval of the opposite sign)",
                "not shown": "not shown (no 95% interval excludes 0)"}
_TEACHER_COLUMNS = (("test_acc", "test acc (%)", True), ("test_ece", "ECE (%)", True),
                    ("test_ece_ts", "ECE after TS (%)", True), ("test_ts_temperature", "TS T*", False),
                    ("test_r2", "R² (higher = tighter)", False), ("test_nc1", "NC1 (lower = tighter)", False),
                    ("mutual_information", "mutual information (nats)", False))


def _table(header: Sequence[str], body: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(cells) + " |" for cells in body)]


def _difference_cells(entry: Mapping[str, Any], value: str = "mean") -> list[str]:
    """The _DIFFERENCE_HEADER cells of one comparison."""
    if entry.get("missing"):
        return ["n/a", "n/a", "n/a", "n/a", str(entry["n"]), "n/a", "n/a", f"{entry['verdict']}: {entry['missing']}"]
    seeds = entry["seeds_needed"]
    return [pp(entry[value], signed=True), ci(entry), ci(entry, "family_"), _p(entry["p_holm"]), str(entry["n"]),
            pp(entry["mde"]), "n/a" if seeds is None else str(seeds), _word(entry)]


def _p(p: float | None) -> str:
    return p_text(p).removeprefix("p ").removeprefix("= ")


def _word(entry: Mapping[str, Any]) -> str:
    """The verdict word, bold when Holm decided it."""
    return f"**{entry['verdict']}** (Holm)" if entry.get("holm_decided") else entry["verdict"]


def _interval_text(interval: Mapping[str, Any], percent: bool = True) -> str:
    """'mean [low, high]' in percent or as a plain number, 'n/a' when unknown."""
    if interval["mean"] is None:
        return "n/a"
    if percent:
        return f"{pp(interval['mean'])} {ci(interval)}"
    return f"{interval['mean']:.3f} {number_ci(interval, digits=3, signed=False)}"


def _secondary_table(verdict: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The compact table of every secondary: comparison, diff, 95% CI, Holm p, word."""
    body = []
    for label, entry, value in secondary_rows(verdict):
        if entry.get("missing"):
            body.append([label, "n/a", "n/a", "n/a", "n/a (missing)"])
        else:
            body.append([label, pp(entry[value], signed=True), ci(entry), _p(entry["p_holm"]),
                         entry["verdict"] + (" (Holm)" if entry.get("holm_decided") else "")])
    return ["comparison", "diff pp", "95% CI (expl.)", "Holm p", "word"], body


def _primary_markdown(verdict: Mapping[str, Any]) -> list[str]:
    """The primary, the precondition and the design's looks, in detail."""
    design = verdict["design"]
    lines = ["## The primary question and its precondition", ""]
    for name in ("primary", "precondition"):
        e = verdict[name]
        low, high = e["ci_pp"]
        interval = "n/a" if low is None else f"[{low:+.2f}, {high:+.2f}]"
        lines += [f"- **{name}**: {e['question']}: **{e['word']}**, "
                  f"{'n/a' if e['estimate_pp'] is None else format(e['estimate_pp'], '+.2f')} pp, "
                  f"{100 * e['level']:.4g}% CI {interval}, n = {e['n']}, {p_text(e['p'])} "
                  f"(equivalence margin ±{e['margin_pp']:.2g} pp, TOST {p_text(e['tost_p'])}); per seed (pp): "
                  + (", ".join(f"{p['seed']}: {p['contrast_pp']:+.2f}" for p in e["per_seed"]) or "none")
                  + (f"; seeds left out for missing cells: {e['incomplete_seeds']}" if e["incomplete_seeds"] else "")]
    looks = [[str(x["index"]), str(x["declaration"]), f"{x['look']} of {len(design['declarations'][x['declaration'] - 1]['design']['schedule'])}",
              str(x["n"]), f"{x['alpha']:.4g}", "n/a" if x["estimate_pp"] is None else f"{x['estimate_pp']:+.2f}",
              "n/a" if x["ci_pp"][0] is None else f"[{x['ci_pp'][0]:+.2f}, {x['ci_pp'][1]:+.2f}]", x["word"], x["at"]]
             for x in design["looks"]]
    declarations = [[str(d["index"]), d["declared_at"], str(d["declared_sha256"])[:12],
                     ", ".join(map(str, d["design"]["schedule"])), f"{d['alpha_budget']:.4g}",
                     "yes" if d["redeclared_after_look"] else "no"] for d in design["declarations"]]
    lines += ["", f"Planned looks (seeds): {', '.join(map(str, design['schedule']))}; {design['spending']}. "
              f"Alpha spent so far: {design['alpha_spent']:.4g} of {design['alpha']:g}.", "",
              *_table(["declaration", "declared at", "study file sha256", "looks at seeds", "alpha budget",
                       "after a look"], declarations), "",
              *_table(["look", "declaration", "planned", "n", "alpha", "estimate (pp)", "CI (pp)", "word", "at"], looks),
              ""]
    return lines


def _family_markdown(verdict: Mapping[str, Any]) -> list[str]:
    """How the secondaries are decided, and the test-set size that sets the scale of a difference."""
    family = verdict["family"]
    test_n = verdict["test_n"]
    size = ("unknown" if test_n is None else f"{test_n} (one test example = {100 / test_n:.3f} pp)"
            if isinstance(test_n, int) else f"differs between runs: {test_n}")
    return ["## How the secondaries are decided", "",
            f"- Family: {family['m']} comparisons ({family['comparisons']}), decided together by Holm's step-down "
            "at 5% (any false decision at most 5% in all). Words: worse / better when Holm decides, else undecided; "
            "no secondary is called 'no difference'.",
            "- 95% CI: each comparison's own interval, exploratory. Family-wise CI: Bonferroni, each at "
            f"{100 * family['per_comparison_level']:.3f}%, all holding together at 95%.",
            f"- MDE: smallest effect detected with {100 * family['power']:.0f}% power ({family['mde_method']}). "
            "Seeds for ±0.5 pp: seeds at which the family-wise half-width would be <= 0.5 pp with the observed "
            "spread.",
            f"- Test-set size: {size}.", ""]


def _paired_markdown(paired: list[Mapping[str, Any]]) -> list[str]:
    """One table per temperature of LS-teacher minus plain-teacher student accuracy."""
    lines = ["## Paired differences: LS-teacher student minus plain-teacher student (test accuracy)", ""]
    for temperature in sorted({entry["temperature"] for entry in paired}):
        body = [[f"{e['alpha']:g}", *_difference_cells(e)] for e in paired if e["temperature"] == temperature]
        lines += [f"### T={temperature:g}", "", *_table(["alpha", *_DIFFERENCE_HEADER], body), ""]
    return lines


def _matched_markdown(matched: list[Mapping[str, Any]]) -> list[str]:
    """The LS effect at equal teacher accuracy, per T and alpha, with the slope it relies on."""
    body = [[f"{e['temperature']:g}", f"{e['alpha']:g}", *_difference_cells(e, "effect"), str(e["df"]),
             "n/a" if e["slope"]["value"] is None else f"{e['slope']['value']:+.2f} {number_ci(e['slope'])}",
             "n/a" if e["teacher_acc_range"] is None else "–".join(pp(a) for a in e["teacher_acc_range"])]
            for e in matched]
    return ["## Teacher accuracy held equal", "",
            "OLS per T over every teacher's students (one row per alpha and seed): student acc ~ b0 + b_acc * "
            "(teacher acc - mean) + b_alpha[alpha] + b_seed[seed]; the diff is b_alpha, the LS effect at equal "
            "teacher accuracy, assuming linearity in teacher accuracy over the range shown.",
            "", *_table(["T", "alpha", *_DIFFERENCE_HEADER, "df", "slope on teacher acc [95% CI]",
                         "teacher acc range (%)"], body), ""]


def _mueller_markdown(mueller: Mapping[str, Any]) -> list[str]:
    """Müller's protocol: the selected T and every comparison it makes."""
    best = mueller["best_temperature"]
    chosen = "none (no plain-teacher val_acc)" if best is None else f"T={best:g}"
    body = [[f"{student_label(e['alpha'], e['ls_temperature'])} - {student_label(PLAIN_ALPHA, best)}",
             *_difference_cells(e)] for e in mueller["ls_vs_plain"]]
    body += [[f"{student_label(e['teacher_alpha'], e['temperature'])} - student alone with LS "
              f"(alpha={e['baseline_alpha']:g})", *_difference_cells(e)] for e in mueller["vs_ls_baseline"]]
    return ["## Müller's protocol", "",
            f"Plain teacher's T chosen by mean {mueller['selection_metric']} (never test accuracy): {chosen}.", "",
            *_table(["comparison", *_DIFFERENCE_HEADER], body), "", *(f"- {note}" for note in mueller["notes"]), ""]


def _mechanism_markdown(mechanism: Mapping[str, Any]) -> list[str]:
    """Correlation of each teacher measure with its students' gain, per T, and the conclusions."""
    body = [[r["label"], f"{r['temperature']:g}", str(r["n"]), "n/a" if r["r"] is None else f"{r['r']:+.2f}",
             number_ci(r), r["verdict"]] for r in mechanism["rows"]]
    conclusions = [f"- {c['label']}: " + ("no prediction from Müller's account" if c["predicted_sign"] is None
                                          else f"Müller's prediction: {_CONCLUSIONS[c['conclusion']]}")
                   for c in mechanism["conclusions"]]
    return ["## Mechanism (exploratory): teacher measures vs their students' gain", "",
            "Gain: the LS teacher's student minus the plain teacher's student, same seed and T. "
            f"Pearson r with 95% Fisher-z intervals (n >= 4), {mechanism['pooling']}; exploratory: no correction "
            "across the table, and 'undecided' where the interval contains 0 (no relation is called absent).", "",
            *_table(["measure", "T", "n", "r", "95% CI", "relation (exploratory)"], body), "", *conclusions, ""]


def _grid(entries: list[Mapping[str, Any]], cell: str) -> list[str]:
    """An alpha x T table of '<mean> [CI] (n)' from entries keyed by alpha and temperature."""
    temperatures = sorted({e["temperature"] for e in entries})
    by_key = {(e["alpha"], e["temperature"]): e[cell] if cell else e for e in entries}
    body = [[f"{alpha:g}", *(f"{_interval_text(by_key[(alpha, t)])} (n={by_key[(alpha, t)]['n']})"
                             if (alpha, t) in by_key else "—" for t in temperatures)]
            for alpha in sorted({e["alpha"] for e in entries})]
    return _table(["teacher alpha", *(f"T={t:g}" for t in temperatures)], body)


def _tables_markdown(verdict: Mapping[str, Any]) -> list[str]:
    """Student accuracy (alpha x T), baselines, teachers and the teacher-student gap."""
    teachers = [[f"{t['alpha']:g}", str(t["n"]), *(_interval_text(t[m], percent) for m, _, percent in _TEACHER_COLUMNS)]
                for t in verdict["teachers"]]
    baselines = [[f"{b['alpha']:g}", _interval_text(b["test_acc"]), str(b["test_acc"]["n"])]
                 for b in verdict["cells"]["baselines"]]
    return ["## Student test accuracy (%): mean [95% CI] (n), unpaired per cell", "",
            *_grid(verdict["cells"]["students"], "test_acc"), "",
            "## Students trained alone (test accuracy, %)", "",
            *_table(["LS alpha", "mean [95% CI]", "n"], baselines), "",
            "## Teachers: mean [95% CI] over seeds", "",
            *_table(["alpha", "n", *(label for _, label, _ in _TEACHER_COLUMNS)], teachers), "",
            "## Teacher-student gap: teacher minus its student, same seed (pp)", "",
            *_grid(verdict["gap"], ""), ""]


def _per_seed_markdown(verdict: Mapping[str, Any]) -> list[str]:
    """Every per-seed value behind the tables, collapsed."""
    body = [[f"student, teacher alpha={c['alpha']:g}, T={c['temperature']:g}", str(p["seed"]), pp(p["value"])]
            for c in verdict["cells"]["students"] for p in c["test_acc"]["per_seed"]]
    body += [[f"student alone, LS alpha={b['alpha']:g}", str(p["seed"]), pp(p["value"])]
             for b in verdict["cells"]["baselines"] for p in b["test_acc"]["per_seed"]]
    body += [[f"teacher alpha={t['alpha']:g}", str(p["seed"]), pp(p["value"])]
             for t in verdict["teachers"] for p in t["test_acc"]["per_seed"]]
    body += [[f"paired diff, alpha={e['alpha']:g}, T={e['temperature']:g} (pp)", str(p["seed"]), pp(p["diff"], True)]
             for e in verdict["paired"] for p in e["per_seed"]]
    return ["<details>", "<summary>Per-seed values (test accuracy, %)</summary>", "",
            *_table(["run", "seed", "value"], body), "", "</details>", ""]


def render_markdown(verdict: Mapping[str, Any]) -> str:
    """verdict.md: the headline, the compact secondaries table, then the primary in detail, how the
    secondaries are decided, paired, accuracy-matched, Müller, per-loss, mechanism, the accuracy
    tables and the per-seed appendix."""
    header, body = _secondary_table(verdict)
    lines = ["# Verdict", "", verdict["headline"], "", *(verdict.get("notes") or []), *([""] if verdict.get("notes") else []),
             "## Secondaries (Holm at 5%; 95% intervals exploratory)", "", *_table(header, body), "",
             f"Failed runs left out: {verdict['failed']}.", ""]
    lines += _primary_markdown(verdict)
    lines += _family_markdown(verdict)
    lines += ["## Secondary comparisons, one line each", "", *(f"- {line}" for line in verdict["summary"]), ""]
    lines += _paired_markdown(verdict["paired"])
    lines += _matched_markdown(verdict["accuracy_matched"])
    lines += _mueller_markdown(verdict["mueller"])
    lines += _losses_markdown(verdict.get("losses", []))
    lines += _mechanism_markdown(verdict["mechanism"])
    lines += _tables_markdown(verdict)
    lines += _per_seed_markdown(verdict)
    return "\n".join(lines)


def _losses_markdown(losses: list[Mapping[str, Any]]) -> list[str]:
    """Per loss, the LS-vs-plain contrast; per further loss, the loss x LS interaction."""
    if not losses:
        return []
    body = [[e["loss"] if e["kind"] == "loss" else f"{e['loss']} minus {e['reference_loss']}",
             *_difference_cells(e)] for e in losses]
    return ["## Losses: the LS effect under each distillation loss, and the loss x LS interaction", "",
            "Per loss: the primary's contrast (LS-teacher minus plain-teacher students, averaged over its grid) "
            "under that loss; interaction: that contrast minus the first loss's, paired by seed.", "",
            *_table(["loss", *_DIFFERENCE_HEADER], body), ""]


def _text_table(header: Sequence[str], body: list[list[str]], width: int) -> list[str]:
    """A plain-text table whose first column is cut (with '…') so that every line fits ``width``."""
    columns = list(zip(header, *body))
    widths = [max(map(len, column)) for column in columns]
    spare = width - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:
        widths[0] = max(8, widths[0] + spare)

    def line(cells: Sequence[str]) -> str:
        first = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 1] + "…"
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])),
                          cells[-1]]).rstrip()[:width]

    return [line(header), *(line(cells) for cells in body)]


def render_text(verdict: Mapping[str, Any], width: int = WIDTH) -> str:
    """The verdict for a terminal: the headline wrapped to ``width`` columns and the compact table of
    the secondaries, as plain text (no markdown, no HTML)."""
    header, body = _secondary_table(verdict)
    lines = ["Verdict", "", *textwrap.wrap(verdict["headline"], width), ""]
    for note in verdict.get("notes") or []:
        lines += [*textwrap.wrap(note.replace("**", ""), width), ""]
    lines += [f"Secondaries ({verdict['family']['m']}, Holm at 5%; 95% intervals exploratory):",
              *_text_table(header, body, width)]
    if verdict["failed"]:
        lines.append(f"Failed runs left out: {verdict['failed']}.")
    return "\n".join(lines)
