"""verdict.md: the verdict's data (verdict.py) as markdown a researcher can paste.

Accuracies and differences are in percent / percentage points with two decimals; the words come
from the family-wise intervals only (family.py); per-seed values sit in a collapsed appendix.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from kd_ls.verdict.sentences import PLAIN_ALPHA, ci, number_ci, pp, student_label

_DIFFERENCE_HEADER = ["diff (pp)", "family-wise CI (pp)", "95% CI (pp)", "n", "MDE (pp)", "seeds for ±0.5 pp",
                      "verdict"]
_CONCLUSIONS = {"holds": "holds (a decided correlation of the predicted sign, none against)",
                "contradicted": "contradicted (a decided correlation of the opposite sign)",
                "not shown": "not shown (no correlation decided)"}
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
        return ["n/a", "n/a", "n/a", str(entry["n"]), "n/a", "n/a", f"{entry['verdict']}: {entry['missing']}"]
    seeds = entry["seeds_needed"]
    return [pp(entry[value], signed=True), ci(entry, "family_"), ci(entry), str(entry["n"]), pp(entry["mde"]),
            "n/a" if seeds is None else str(seeds), entry["verdict"]]


def _interval_text(interval: Mapping[str, Any], percent: bool = True) -> str:
    """'mean [low, high]' in percent or as a plain number, 'n/a' when unknown."""
    if interval["mean"] is None:
        return "n/a"
    if percent:
        return f"{pp(interval['mean'])} {ci(interval)}"
    return f"{interval['mean']:.3f} {number_ci(interval, digits=3, signed=False)}"


def _family_markdown(verdict: Mapping[str, Any]) -> list[str]:
    """How the words were decided, and the test-set size that sets the scale of a difference."""
    family = verdict["family"]
    test_n = verdict["test_n"]
    size = ("unknown" if test_n is None else f"{test_n} (one test example = {100 / test_n:.3f} pp)"
            if isinstance(test_n, int) else f"differs between runs: {test_n}")
    return ["## How the words are decided", "",
            f"- Family: {family['m']} comparisons ({family['comparisons']}); Bonferroni, so each family-wise "
            f"interval is at {100 * family['per_comparison_level']:.3f}% and all hold together at 95%.",
            f"- worse / better: the family-wise interval excludes 0; no detectable difference: it contains 0 with "
            f"a half-width <= {pp(family['resolution'])} pp; otherwise undecided. n = 1 is always undecided.",
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
             number_ci(r), number_ci(r, "family_"), r["verdict"]] for r in mechanism["rows"]]
    conclusions = [f"- {c['label']}: " + ("no prediction from Müller's account" if c["predicted_sign"] is None
                                          else f"Müller's prediction: {_CONCLUSIONS[c['conclusion']]}")
                   for c in mechanism["conclusions"]]
    return ["## Mechanism: teacher measures vs their students' gain", "",
            "Gain: the LS teacher's student minus the plain teacher's student, same seed and T. "
            f"Pearson r with Fisher-z intervals (n >= 4), {mechanism['pooling']}; family-wise over the "
            f"{mechanism['family']['m']} correlations with an interval (Bonferroni).", "",
            *_table(["measure", "T", "n", "r", "95% CI", "family-wise CI", "relation"], body), "", *conclusions, ""]


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
    """verdict.md: summary, how words are decided, paired, accuracy-matched, Müller, mechanism,
    the accuracy tables and the per-seed appendix."""
    lines = ["# Verdict", "", *(f"- {line}" for line in verdict["summary"]), "",
             f"Failed runs left out: {verdict['failed']}.", ""]
    lines += _family_markdown(verdict)
    lines += _paired_markdown(verdict["paired"])
    lines += _matched_markdown(verdict["accuracy_matched"])
    lines += _mueller_markdown(verdict["mueller"])
    lines += _mechanism_markdown(verdict["mechanism"])
    lines += _tables_markdown(verdict)
    lines += _per_seed_markdown(verdict)
    return "\n".join(lines)
