"""One comparison table across studies, from local study folders or a W&B project (`kd-ls compare`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional

from kd_ls.layout import StudyLayout
from kd_ls.study.verdict import build_verdict

ROLES = ("teacher", "student", "baseline")


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


def comparison_table(sources: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per source, T and alpha: the paired LS-minus-plain student difference and its verdict."""
    table = []
    for name, rows in sources.items():
        verdict = build_verdict(rows)
        for entry in verdict["paired"]:
            table.append({"source": name, "T": entry["temperature"], "alpha": entry["alpha"], "n": entry["n"],
                          "mean_pp": _pp(entry["mean"]), "low_pp": _pp(entry["low"]), "high_pp": _pp(entry["high"]),
                          "verdict": entry["verdict"] if not entry.get("missing") else f"missing: {entry['missing']}"})
    return table


def _pp(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(100 * value, 2)


def render(table: list[dict[str, Any]]) -> str:
    """Markdown table of the comparison."""
    head = "| source | T | alpha | LS - plain student (pp) | 95% CI (pp) | n | verdict |\n|---|---|---|---|---|---|---|"
    lines = [head]
    for r in table:
        ci = "n/a" if r["low_pp"] is None else f"[{r['low_pp']:.2f}, {r['high_pp']:.2f}]"
        mean = "n/a" if r["mean_pp"] is None else f"{r['mean_pp']:+.2f}"
        lines.append(f"| {r['source']} | {r['T']:g} | {r['alpha']:g} | {mean} | {ci} | {r['n']} | {r['verdict']} |")
    return "\n".join(lines)
