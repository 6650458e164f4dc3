"""One comparison across studies, from local study folders or a W&B project (`kd-ls compare`):
per source, the paired LS-minus-plain student differences, Müller's protocol and the teachers."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Optional

from kd_ls.layout import StudyLayout
from kd_ls.verdict.sentences import PLAIN_ALPHA, student_label
from kd_ls.verdict.build import build_verdict

ROLES = ("teacher", "student", "baseline")
TABLES = ("primary", "paired", "mueller", "teachers")
# Teacher columns: verdict.json's teacher metric -> heading; fractions shown as percent.
TEACHER_METRICS = {"test_acc": "test acc (%)", "test_ece": "ECE (%)", "test_ece_ts": "ECE after TS (%)",
                   "test_ts_temperature": "TS T*"}


def rows_from_study_dir(study_dir: Path) -> list[dict[str, Any]]:
    """The results.csv rows of a local study folder."""
    path = StudyLayout.of(study_dir).results
    if not path.is_file():
        raise FileNotFoundError(f"STUDY_DIR: '{study_dir}' has no results.csv (run `kd-ls report {study_dir}`)")
    with open(path) as f:
        return list(csv.DictReader(f))


def rows_from_wandb(project: str, group: Optional[str]) -> list[dict[str, Any]]:
    """Rows rebuilt from W&B runs (config fields role/seed/alpha/teacher_alpha/temperature, summary metrics)."""
    import wandb

    runs = wandb.Api().runs(project, filters={"group": group} if group else None)
    rows = []
    for run in runs:
        if run.config.get("role") not in ROLES:
            continue
        row = {k: run.config.get(k) for k in ("role", "seed", "alpha", "teacher_alpha", "temperature", "run_id")}
        row["status"] = "done" if run.state == "finished" else "failed"
        row.update({k.replace("/", "_"): v for k, v in run.summary.items() if isinstance(v, (int, float))})
        rows.append(row)
    return rows


def _difference(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A comparison's numbers in pp (None when unknown) and its word."""
    return {"n": entry["n"], "mean_pp": _pp(entry.get("mean")), "low_pp": _pp(entry.get("low")),
            "high_pp": _pp(entry.get("high")), "family_low_pp": _pp(entry.get("family_low")),
            "family_high_pp": _pp(entry.get("family_high")),
            "verdict": f"missing: {entry['missing']}" if entry.get("missing") else entry.get("verdict")}


def _mueller_rows(mueller: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Müller's protocol: each LS teacher's student at T=1 against the plain teacher's at its
    val-chosen T, and each of them against the student trained alone with LS."""
    best = mueller.get("best_temperature")
    rows = [{"comparison": f"{student_label(e['alpha'], e['ls_temperature'])} - {student_label(PLAIN_ALPHA, best)}",
             **_difference(e)} for e in mueller.get("ls_vs_plain", [])]
    rows += [{"comparison": f"{student_label(e['teacher_alpha'], e['temperature'])} - student alone with LS "
                            f"(alpha={e['baseline_alpha']:g})", **_difference(e)}
             for e in mueller.get("vs_ls_baseline", [])]
    return rows


def _teacher_rows(teachers: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per teacher alpha: accuracy and calibration with their 95% intervals."""
    rows = []
    for teacher in teachers:
        row: dict[str, Any] = {"alpha": teacher["alpha"], "n": teacher["n"]}
        for metric in TEACHER_METRICS:
            interval = teacher.get(metric) or {}
            scale = 1 if metric == "test_ts_temperature" else 100
            for key in ("mean", "low", "high"):
                value = interval.get(key)
                row[f"{metric}_{key}"] = None if value is None else round(scale * value, 2 if scale == 100 else 3)
        rows.append(row)
    return rows


def comparison_tables(sources: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Per source (study folder or W&B group): its verdict's primary question and precondition (the
    default design of its rows), paired differences (per T and alpha), Müller-protocol rows and
    teacher rows, each table a list of flat rows with a `source` column."""
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for name, rows in sources.items():
        verdict = build_verdict(rows)
        tables["primary"] += [{"source": name, "question": question, "word": e["word"], "mean_pp": e["estimate_pp"],
                               "low_pp": e["ci_pp"][0], "high_pp": e["ci_pp"][1], "n": e["n"], "p": e["p"]}
                              for question, e in (("primary", verdict["primary"]),
                                                  ("precondition", verdict["precondition"]))]
        tables["paired"] += [{"source": name, "T": e["temperature"], "alpha": e["alpha"], **_difference(e)}
                             for e in verdict["paired"]]
        tables["mueller"] += [{"source": name, **row} for row in _mueller_rows(verdict["mueller"])]
        tables["teachers"] += [{"source": name, **row} for row in _teacher_rows(verdict["teachers"])]
    return tables


def _pp(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(100 * value, 2)


def _signed(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _interval(row: Mapping[str, Any], prefix: str) -> str:
    low, high = row[f"{prefix}low_pp"], row[f"{prefix}high_pp"]
    return "n/a" if low is None or high is None else f"[{low:.2f}, {high:.2f}]"


def _markdown(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in body)]


def render(tables: dict[str, list[dict[str, Any]]]) -> str:
    """The comparison as markdown: primary and precondition, paired differences, Müller's protocol, teachers."""
    differences = ["LS - plain student (pp)", "95% CI (pp)", "family-wise CI (pp)", "n", "verdict (Holm)"]

    def cells(row: Mapping[str, Any]) -> list[str]:
        return [_signed(row["mean_pp"]), _interval(row, ""), _interval(row, "family_"), str(row["n"]),
                str(row["verdict"])]

    def teacher_cell(row: Mapping[str, Any], metric: str) -> str:
        mean, low, high = (row[f"{metric}_{k}"] for k in ("mean", "low", "high"))
        return "n/a" if mean is None else f"{mean:g}" + ("" if low is None else f" [{low:g}, {high:g}]")

    lines = ["## Primary question and precondition (each study's default design: one look at its seeds)", ""]
    lines += _markdown(["source", "question", "word", "estimate (pp)", "95% CI (pp)", "n", "p"],
                       [[r["source"], r["question"], r["word"], _signed(r["mean_pp"]), _interval(r, ""), str(r["n"]),
                         "n/a" if r["p"] is None else f"{r['p']:.3g}"] for r in tables["primary"]])
    lines += ["", "## Paired differences: LS-teacher student minus plain-teacher student (test accuracy)", ""]
    lines += _markdown(["source", "T", "alpha", *differences],
                       [[r["source"], f"{r['T']:g}", f"{r['alpha']:g}", *cells(r)] for r in tables["paired"]])
    lines += ["", "## Müller's protocol (plain teacher's T chosen by val accuracy)", ""]
    lines += _markdown(["source", "comparison", "difference (pp)", *differences[1:]],
                       [[r["source"], r["comparison"], *cells(r)] for r in tables["mueller"]]) if tables["mueller"] \
        else ["No Müller-protocol comparison (no LS teacher distilled at T=1, or no baseline)."]
    lines += ["", "## Teachers (95% CI over seeds)", ""]
    lines += _markdown(["source", "alpha", "n", *TEACHER_METRICS.values()],
                       [[r["source"], f"{r['alpha']:g}", str(r["n"]), *(teacher_cell(r, m) for m in TEACHER_METRICS)]
                        for r in tables["teachers"]])
    return "\n".join(lines)


def write_csv(tables: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Every table in one CSV, a `table` column saying which each row belongs to."""
    rows = [{"table": name, **row} for name in TABLES for row in tables[name]]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
