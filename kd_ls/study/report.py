"""Turn a study folder's run records into results.csv, the verdict and the plots.

`kd-ls report STUDY_DIR` calls `write_report` alone: nothing is trained.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from kd_ls import metrics
from kd_ls.io import atomic_write_json, atomic_write_text
from kd_ls.layout import AnalysisLayout, StudyLayout
from kd_ls.plots.study import plot_student_accuracy_vs_temperature, plot_teacher_vs_alpha, plot_tightness_vs_alpha
from kd_ls.study.render import render_markdown
from kd_ls.study.runner import read_record
from kd_ls.study.verdict import build_verdict

RUN_COLUMNS = ("run_id", "role", "status", "seed", "alpha", "teacher_alpha", "temperature", "teacher_id", "seconds",
               "error")
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
    """One row per planned run of the study: its identity, config fields and metrics.

    Teachers also get the smoothness index at every temperature the study distils at,
    computed from their stored test logits, so a temperature added to a finished study needs
    no teacher to be retrained."""
    layout = StudyLayout.of(study_dir)
    manifest = json.loads(layout.manifest.read_text())
    temperatures = sorted(set(manifest["study"]["temperatures"]) | set(manifest["study"].get("ls_temperatures") or []))
    rows = []
    for planned in manifest["runs"]:
        record = read_record(study_dir, planned["run_id"]) or {"status": "missing"}
        row = {k: record.get(k, planned.get(k)) for k in RUN_COLUMNS}
        row.update(flatten_config(planned["config"]))
        row.update({k.replace("/", "_"): v for k, v in (record.get("metrics") or {}).items()})
        if row["role"] == "teacher" and row["status"] == "done":
            row.update(smoothness_columns(layout.run(planned["run_id"]).test_outputs, temperatures, row))
        rows.append(row)
    return rows


def smoothness_columns(outputs_file: Path, temperatures: list[float], row: dict[str, Any]) -> dict[str, float]:
    """test_smoothness_T<t> for each temperature the row lacks, from a teacher's test logits."""
    missing = [t for t in temperatures if f"test_smoothness_T{t:g}" not in row]
    if not missing or not outputs_file.is_file():
        return {}
    outputs = torch.load(outputs_file, map_location="cpu")
    return {f"test_smoothness_T{t:g}": metrics.smoothness_index(outputs["logits"], outputs["labels"], t).item()
            for t in missing}


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
    layout = StudyLayout.of(study_dir)
    rows = collect_rows(study_dir)
    atomic_write_text(layout.results, rows_to_csv(rows))
    verdict = build_verdict(rows)  # counts failed runs, leaves out missing ones
    atomic_write_json(layout.verdict_json, verdict)
    atomic_write_text(layout.verdict_md, render_markdown(verdict))
    plot_student_accuracy_vs_temperature(rows, layout.plot("student_accuracy_vs_temperature"))
    plot_teacher_vs_alpha(rows, layout.plot("teacher_vs_alpha"))
    plot_tightness_vs_alpha(rows, layout.plot("tightness_vs_alpha"), metrics=TIGHTNESS)
    analyze_first_seed_teachers(study_dir, rows)
    return verdict


def analyze_first_seed_teachers(study_dir: Path, rows: list[dict[str, Any]]) -> None:
    """`kd-ls analyze` on each alpha's teacher of the first seed: Müller projection of the
    first three classes, reliability diagram, mutual information, into analysis/teacher_alpha<a>/."""
    from kd_ls.analysis import analyze_checkpoint
    from kd_ls.data import datamodule_from_config

    layout = StudyLayout.of(study_dir)
    teachers = [r for r in rows if r["role"] == "teacher" and r["status"] == "done"]
    if not teachers:
        return
    first_seed = min(r["seed"] for r in teachers)
    for row in teachers:
        if row["seed"] != first_seed:
            continue
        out = layout.teacher_analysis(row["alpha"])
        if AnalysisLayout(out).metrics.is_file():
            continue  # analysis of a finished teacher does not change
        run = layout.run(row["run_id"])
        analyze_checkpoint(str(run.last_checkpoint), datamodule_from_config(run.config), out)
