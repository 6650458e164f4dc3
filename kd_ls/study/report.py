"""Turn a study folder's run records into results.csv, the verdict and the plots.

`kd-ls report STUDY_DIR` calls `write_report` alone: nothing is trained.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from kd_ls.io import atomic_write_json, atomic_write_text
from kd_ls.study.plots import plot_student_accuracy_vs_temperature, plot_teacher_vs_alpha, plot_tightness_vs_alpha
from kd_ls.study.runner import read_record
from kd_ls.study.verdict import build_verdict, render_markdown

RUN_COLUMNS = ("run_id", "role", "status", "seed", "alpha", "temperature", "teacher_id", "seconds", "error")
TIGHTNESS = ("test_r2", "test_nc1", "test_variance_ratio", "test_cdnv", "test_silhouette", "test_stability")


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for a nested run config, dropping jsonargparse's `init_args` level."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key == "init_args" and isinstance(value, dict):
            flat.update(flatten_config(value, prefix))
        elif isinstance(value, dict) and value:
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return flat


def collect_rows(study_dir: Path) -> list[dict[str, Any]]:
    """One row per planned run of the study: its identity, config fields and metrics."""
    manifest = json.loads((study_dir / "study.json").read_text())
    rows = []
    for planned in manifest["runs"]:
        record = read_record(study_dir, planned["run_id"]) or {"status": "missing"}
        row = {k: record.get(k, planned.get(k)) for k in RUN_COLUMNS}
        row.update(flatten_config(planned["config"]))
        row.update({k.replace("/", "_"): v for k, v in (record.get("metrics") or {}).items()})
        rows.append(row)
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with the union of all rows' columns (run identity first)."""
    columns = list(RUN_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_report(study_dir: Path) -> dict[str, Any]:
    """Write results.csv, verdict.json, verdict.md and the plots; return the verdict."""
    rows = collect_rows(study_dir)
    atomic_write_text(study_dir / "results.csv", rows_to_csv(rows))
    verdict = build_verdict(rows)  # counts failed runs, leaves out missing ones
    atomic_write_json(study_dir / "verdict.json", verdict)
    atomic_write_text(study_dir / "verdict.md", render_markdown(verdict))
    plots = study_dir / "plots"
    plot_student_accuracy_vs_temperature(rows, plots / "student_accuracy_vs_temperature.png")
    plot_teacher_vs_alpha(rows, plots / "teacher_vs_alpha.png")
    plot_tightness_vs_alpha(rows, plots / "tightness_vs_alpha.png", metrics=TIGHTNESS)
    analyze_first_seed_teachers(study_dir, rows)
    return verdict


def analyze_first_seed_teachers(study_dir: Path, rows: list[dict[str, Any]]) -> None:
    """`kd-ls analyze` on each alpha's teacher of the first seed: Müller projection of the
    first three classes, reliability diagram, mutual information, into analysis/teacher_alpha<a>/."""
    from kd_ls.analyze import analyze_checkpoint, datamodule_from_config

    teachers = [r for r in rows if r["role"] == "teacher" and r["status"] == "done"]
    if not teachers:
        return
    first_seed = min(r["seed"] for r in teachers)
    for row in teachers:
        if row["seed"] != first_seed:
            continue
        out = study_dir / "analysis" / f"teacher_alpha{row['alpha']:g}"
        if (out / "metrics.json").is_file():
            continue  # analysis of a finished teacher does not change
        folder = study_dir / "runs" / row["run_id"]
        analyze_checkpoint(str(folder / "checkpoints" / "last.ckpt"), datamodule_from_config(folder / "config.yaml"), out)
