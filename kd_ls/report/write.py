"""Turn a study folder's run records into results.csv, the verdict, the plots and report.html.

`kd-ls report STUDY_DIR` calls `write_report` alone: nothing is trained.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import torch

from kd_ls import metrics
from kd_ls.io import atomic_write_json, atomic_write_text
from kd_ls.layout import AnalysisLayout, StudyLayout
from kd_ls.report.render import render_markdown
from kd_ls.report.page import write_report_page
from kd_ls.records import DONE, FAILED, INTERRUPTED, read_record
from kd_ls.report.history import now, read_history, save_history
from kd_ls.verdict import sequential
from kd_ls.verdict.build import build_verdict

class ReportError(ValueError):
    """A study folder whose report cannot be (re)built; the message is one line naming it."""


RUN_COLUMNS = ("run_id", "role", "status", "seed", "alpha", "teacher_alpha", "temperature", "loss", "teacher_id",
               "seconds", "error")
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

    Teachers also get the smoothness index at every temperature the study distils at and the
    test-set size `test_n`, computed from their stored test outputs, so a temperature added to a
    finished study needs no teacher to be retrained."""
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
            row.update(teacher_output_columns(layout.run(planned["run_id"]).test_outputs, temperatures, row))
        rows.append(row)
    return rows


def teacher_output_columns(outputs_file: Path, temperatures: list[float], row: dict[str, Any]) -> dict[str, float]:
    """test_smoothness_T<t> for each temperature the row lacks, and test_n (the number of test
    examples) when it lacks it, from a teacher's stored test logits and labels."""
    missing = [t for t in temperatures if f"test_smoothness_T{t:g}" not in row]
    if not (missing or "test_n" not in row) or not outputs_file.is_file():
        return {}
    outputs = torch.load(outputs_file, map_location="cpu")
    columns = {f"test_smoothness_T{t:g}": metrics.smoothness_index(outputs["logits"], outputs["labels"], t).item()
               for t in missing}
    if "test_n" not in row:
        columns["test_n"] = int(outputs["labels"].shape[0])
    return columns


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


def check_runs_present(study_dir: Path) -> None:
    """Refuse to rebuild a report that would lose results: runs its results.csv lists as done
    whose records are gone (a copy of a study folder without its runs/, as committed under
    experiments/), which a rebuild would turn into empty tables."""
    results = StudyLayout.of(study_dir).results
    if not results.is_file():
        return
    with open(results, newline="") as f:
        done = [row["run_id"] for row in csv.DictReader(f) if row.get("status") == DONE]
    lost = [run_id for run_id in done if read_record(study_dir, run_id) is None]
    if lost:
        raise ReportError(f"STUDY_DIR: '{study_dir}' lacks the records of {len(lost)} of the {len(done)} finished runs "
                         f"its results.csv lists (e.g. {StudyLayout.of(study_dir).run(lost[0]).record}); rebuilding "
                         "would drop them, so nothing was rewritten (copy the study's runs/ folder along with it)")


def completeness(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """verdict.json's `incomplete` flag and `run_counts`: the verdict leaves out every planned
    run that did not finish."""
    statuses = [row["status"] for row in rows]
    counts = {"planned": len(rows), "done": statuses.count(DONE), "failed": statuses.count(FAILED),
              "interrupted": statuses.count(INTERRUPTED), "missing": statuses.count("missing")}
    return {"incomplete": counts["done"] < counts["planned"], "run_counts": counts}


def notes(verdict: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    """Lines under the headline: an incomplete study, and a secondary family that grew since the
    folder's last verdict (a grid value added: Holm's thresholds are stricter for every comparison)."""
    found = []
    if verdict.get("incomplete"):
        c = verdict["run_counts"]
        found.append(f"**Incomplete:** {c['planned'] - c['done']} of {c['planned']} planned runs did not finish "
                     f"({c['failed']} failed, {c['interrupted']} interrupted, {c['missing']} not run); the numbers "
                     "leave them out.")
    before = ((previous or {}).get("family") or {}).get("m")
    if before is not None and before != verdict["family"]["m"]:
        change = "grew" if verdict["family"]["m"] > before else "shrank"
        effect = ("each comparison now faces stricter Holm thresholds and its family-wise interval widened"
                  if change == "grew" else "Holm's thresholds loosened")
        found.append(f"**The secondary family {change}** from {before} to {verdict['family']['m']} comparisons since "
                     f"this folder's last verdict: {effect}.")
    return found


def decide(study_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The folder's verdict under its declared primary (a look, recorded in its history), with the
    notes on completeness and on the secondary family; nothing else is written."""
    layout = StudyLayout.of(study_dir)
    manifest = json.loads(layout.manifest.read_text())
    previous = json.loads(layout.verdict_json.read_text()) if layout.verdict_json.is_file() else None
    verdict = build_verdict(rows, sequential.design_of(manifest["study"]), read_history(study_dir),
                            manifest.get("study_sha256"), now())
    save_history(study_dir, verdict["design"])
    verdict.update(completeness(rows))  # counts failed runs, leaves out missing ones
    verdict["notes"] = notes(verdict, previous)
    return verdict


def write_report(study_dir: Path) -> dict[str, Any]:
    """Write results.csv, verdict.json, verdict.md, the plots and report.html; return the verdict."""
    check_runs_present(study_dir)
    with study_threads(study_dir):
        return _write_report(study_dir)


@contextmanager
def study_threads(study_dir: Path) -> Iterator[None]:
    """torch on the study's CPU threads (study.json's `threads`) while the block runs: float32
    reductions depend on the thread count, so the analyses come out the same bit for bit whether
    the study's worker or a later `kd-ls report` writes them."""
    manifest = StudyLayout.of(study_dir).manifest
    threads = json.loads(manifest.read_text())["study"].get("threads") if manifest.is_file() else None
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write_report(study_dir: Path) -> dict[str, Any]:
    layout = StudyLayout.of(study_dir)
    rows = collect_rows(study_dir)
    analyses = analyze_teachers(study_dir, rows)  # first: its mutual information is a results column
    atomic_write_text(layout.results, rows_to_csv(rows))
    verdict = decide(study_dir, rows)
    atomic_write_json(layout.verdict_json, verdict)
    atomic_write_text(layout.verdict_md, render_markdown(verdict))
    # Imported here: matplotlib loads only when a report is drawn, and kd_ls.plots.study (which
    # imports kd_ls.study) can be imported first without a circular import.
    from kd_ls.report.figures import draw_figures

    draw_figures(layout, rows, verdict, analyses, tightness=TIGHTNESS)
    write_report_page(study_dir)  # last: report.html shows the files above
    return verdict


def analyze_teachers(study_dir: Path, rows: list[dict[str, Any]]) -> dict[tuple[float, int], Path]:
    """`kd-ls analyze` on every finished teacher (each alpha and seed): Müller projection of the first
    three classes, reliability diagram, mutual information. The first seed's go to
    analysis/teacher_alpha<a>/, the others' to analysis/teacher_alpha<a>_seed<s>/. Each teacher row
    gets its `mutual_information`, so the mechanism table has one value per teacher. Returns the
    analysis folder of each (alpha, seed)."""
    layout = StudyLayout.of(study_dir)
    teachers = [r for r in rows if r["role"] == "teacher" and r["status"] == "done"]
    first_seed = min((r["seed"] for r in teachers), default=None)
    folders = {}
    for row in teachers:
        out = layout.teacher_analysis(row["alpha"], None if row["seed"] == first_seed else row["seed"])
        analysis = AnalysisLayout(out)
        # The analysis of a finished teacher does not change; one from before projections were saved is redone.
        if not (analysis.metrics.is_file() and analysis.projection_points.is_file()):
            # Imported only here: kd_ls.data imports Lightning (2.7 s), which a report whose
            # teachers are all analysed already never needs.
            from kd_ls.analysis import analyze_checkpoint
            from kd_ls.data import datamodule_from_config

            run = layout.run(row["run_id"])
            analyze_checkpoint(str(run.last_checkpoint), datamodule_from_config(run.config), out)
        row["mutual_information"] = json.loads(analysis.metrics.read_text()).get("mutual_information")
        folders[(row["alpha"], row["seed"])] = out
    return folders
