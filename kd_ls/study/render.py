"""verdict.md: the verdict's data (verdict.py) as markdown tables and sentences."""
from __future__ import annotations

from typing import Any, Mapping

from kd_ls.study.verdict import PLAIN_ALPHA, PRIMARY_METRIC, _ci, _pp, _student_label

_DIFFERENCE_HEADER = ["mean diff (pp)", "95% CI (pp)", "n", "verdict"]


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(cells) + " |" for cells in body),
    ]


def _difference_cells(entry: Mapping[str, Any]) -> list[str]:
    """mean diff (pp) | 95% CI | n | verdict, for one comparison."""
    if entry.get("missing"):
        return ["n/a", "n/a", "0", f"missing: {entry['missing']}"]
    return [_pp(entry["mean"], signed=True), _ci(entry), str(entry["n"]), entry["verdict"]]


def _interval_cells(interval: Mapping[str, Any], percent: bool = True) -> list[str]:
    """mean | 95% CI for one interval, in percent or as a plain number."""
    if percent:
        return [_pp(interval["mean"]), _ci(interval)]
    if interval["mean"] is None:
        return ["n/a", "n/a"]
    ci = "n/a" if interval["low"] is None else f"[{interval['low']:.2f}, {interval['high']:.2f}]"
    return [f"{interval['mean']:.2f}", ci]


def _paired_markdown(paired: list[Mapping[str, Any]]) -> list[str]:
    """One table per temperature of LS-teacher minus plain-teacher student accuracy."""
    lines = ["## Paired differences: LS-teacher student minus plain-teacher student (test accuracy)", ""]
    for temperature in sorted({entry["temperature"] for entry in paired}):
        body = [[f"{entry['alpha']:g}", *_difference_cells(entry)]
                for entry in paired if entry["temperature"] == temperature]
        lines += [f"### T={temperature:g}", "", *_table(["alpha", *_DIFFERENCE_HEADER], body), ""]
    return lines


def _mueller_markdown(mueller: Mapping[str, Any]) -> list[str]:
    """Müller's protocol: the selected T and every comparison it makes."""
    best = mueller["best_temperature"]
    chosen = "none (no plain-teacher val_acc)" if best is None else f"T={best:g}"
    body = [
        [f"{_student_label(e['alpha'], e['ls_temperature'])} - {_student_label(PLAIN_ALPHA, best)}",
         *_difference_cells(e)]
        for e in mueller["ls_vs_plain"]
    ] + [
        [f"{_student_label(e['teacher_alpha'], e['temperature'])}"
         f" - student alone with LS (alpha={e['baseline_alpha']:g})", *_difference_cells(e)]
        for e in mueller["vs_ls_baseline"]
    ]
    return [
        "## Müller's protocol",
        "",
        f"Plain teacher's T chosen by mean {mueller['selection_metric']} (never test accuracy): {chosen}.",
        "",
        *_table(["comparison", *_DIFFERENCE_HEADER], body),
        "",
        *(f"- {note}\n" for note in mueller["notes"]),
    ]


def _teachers_markdown(teachers: list[Mapping[str, Any]]) -> list[str]:
    """Teacher accuracy and calibration per alpha."""
    header = ["alpha", "n", "test acc (%)", "95% CI", "ECE (%)", "95% CI",
              "ECE after TS (%)", "95% CI", "TS T*", "95% CI"]
    body = [
        [f"{t['alpha']:g}", str(t["n"]), *_interval_cells(t["test_acc"]), *_interval_cells(t["test_ece"]),
         *_interval_cells(t["test_ece_ts"]), *_interval_cells(t["test_ts_temperature"], percent=False)]
        for t in teachers
    ]
    return ["## Teachers", "", *_table(header, body), ""]


def _cells_markdown(cells: Mapping[str, Any]) -> list[str]:
    """Student and baseline test accuracy per cell."""
    students = [[f"{c['alpha']:g}", f"{c['temperature']:g}", *_interval_cells(c[PRIMARY_METRIC]),
                 str(c[PRIMARY_METRIC]["n"])]
                for c in cells["students"]]
    baselines = [[f"{c['alpha']:g}", *_interval_cells(c[PRIMARY_METRIC]), str(c[PRIMARY_METRIC]["n"])]
                 for c in cells["baselines"]]
    return [
        "## Student cells (test accuracy)", "",
        *_table(["teacher alpha", "T", "mean (%)", "95% CI (%)", "n"], students), "",
        "## Baseline students trained alone (test accuracy)", "",
        *_table(["LS alpha", "mean (%)", "95% CI (%)", "n"], baselines), "",
    ]


def render_markdown(verdict: Mapping[str, Any]) -> str:
    """verdict.md: summary, per-T paired tables, Müller's protocol, teachers and cells.

    Differences are in percentage points with two decimals; verdict words come from the
    intervals only (science.md §6).
    """
    lines = ["# Verdict", "", *(f"- {line}" for line in verdict["summary"]), "",
             f"Failed runs left out: {verdict['failed']}.", ""]
    lines += _paired_markdown(verdict["paired"])
    lines += _mueller_markdown(verdict["mueller"])
    lines += _teachers_markdown(verdict["teachers"])
    lines += _cells_markdown(verdict["cells"])
    return "\n".join(lines)
