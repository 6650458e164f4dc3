"""End to end on the tiny real study: write_report's verdict inputs (test size, every seed's teacher
analysis and mutual information) and its figures."""
from __future__ import annotations

import json

import torch

from conftest import results
from kd_ls.layout import AnalysisLayout, StudyLayout

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_builds_verdict_inputs_and_figures(reference_study):
    layout = StudyLayout.of(reference_study)
    verdict = json.loads(layout.verdict_json.read_text())
    rows = results(reference_study)
    teachers = [r for r in rows if r["role"] == "teacher"]
    labels = torch.load(layout.run(teachers[0]["run_id"]).test_outputs)["labels"]
    assert verdict["test_n"] == labels.shape[0]
    # Every seed's teacher is analysed, and its mutual information is a results column.
    for row in teachers:
        first = row["seed"] == min(r["seed"] for r in teachers)
        folder = AnalysisLayout(layout.teacher_analysis(float(row["alpha"]), None if first else int(row["seed"])))
        assert folder.projection_points.is_file()
        assert float(row["mutual_information"]) == json.loads(folder.metrics.read_text())["mutual_information"]
    assert {(e["temperature"], e["alpha"]) for e in verdict["accuracy_matched"]} == {(1.0, 0.2), (4.0, 0.2)}
    assert verdict["family"]["m"] == sum(e["family_low"] is not None for section in (
        verdict["paired"], verdict["mueller"]["ls_vs_plain"], verdict["mueller"]["vs_ls_baseline"],
        verdict["accuracy_matched"]) for e in section)
    assert {r["measure"] for r in verdict["mechanism"]["rows"]} >= {"r2", "nc1", "mutual_information"}
    for name in ("paired_difference_vs_temperature", "teacher_projections", "mechanism"):
        assert layout.plot(name).read_bytes()[:8] == PNG_MAGIC, name
    markdown = layout.verdict_md.read_text()
    assert "## Teacher accuracy held equal" in markdown and f"Test-set size: {labels.shape[0]}" in markdown
