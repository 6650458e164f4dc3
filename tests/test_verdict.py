"""Tests of the study verdict, its markdown and its plots on small hand-made results tables.

The statistics each have their own file (test_family, test_matched, test_mechanism); here they are
checked as the verdict assembles them, against scipy computed directly."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from scipy import stats

from kd_ls.plots.projection import ProjectionPanel, plot_teacher_projections
from kd_ls.plots.study import (
    paired_difference_figure,
    plot_mechanism,
    plot_student_accuracy_vs_temperature,
    plot_teacher_vs_alpha,
    plot_tightness_vs_alpha,
)
from kd_ls.report.render import render_markdown
from kd_ls.verdict.stats import BETTER, UNDECIDED, Interval, mean_interval
from kd_ls.verdict.build import build_verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T_975_DOF2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2), also in printed t tables


def student(seed, teacher_alpha, temperature, test_acc, val_acc=0.5, status="done"):
    """A distilled student row as the runner writes it: its own alpha is 0."""
    return {"role": "student", "status": status, "seed": seed, "alpha": 0.0, "teacher_alpha": teacher_alpha,
            "temperature": temperature, "test_acc": test_acc, "val_acc": val_acc}


def teacher(seed, alpha, test_acc, ece, ece_ts, test_ts_temperature, **extra):
    """A teacher row; ``extra`` carries optional tightness columns."""
    return {"role": "teacher", "status": "done", "seed": seed, "alpha": alpha, "temperature": "",
            "test_acc": test_acc, "test_ece": ece, "test_ece_ts": ece_ts, "test_ts_temperature": test_ts_temperature,
            **extra}


def baseline(seed, alpha, test_acc):
    """A student trained alone, with (alpha > 0) or without label smoothing."""
    return {"role": "baseline", "status": "done", "seed": seed, "alpha": alpha, "temperature": None,
            "test_acc": test_acc}


def paired_entry(verdict, temperature, alpha):
    """The paired comparison for one (T, alpha)."""
    [entry] = [e for e in verdict["paired"] if e["temperature"] == temperature and e["alpha"] == alpha]
    return entry


# Hand-made study: plain-teacher students at T=1 and T=4; LS teacher alpha=0.1 students at T=1 and T=4.
# At T=4 the LS-teacher students lose 1, 2, 3 pp on seeds 0, 1, 2; at T=1 they gain 1.0, 1.1, 0.9 pp.
# Seed 3 exists only for the LS teacher at T=4 and must not be paired.
# Plain-teacher students: T=4 has the higher test accuracy, T=1 the higher val accuracy.
STUDY = [
    student(0, 0.0, 1, 0.80, val_acc=0.90), student(1, 0.0, 1, 0.81, val_acc=0.91),
    student(2, 0.0, 1, 0.82, val_acc=0.92),
    student(0, 0.0, 4, 0.85, val_acc=0.70), student(1, 0.0, 4, 0.86, val_acc=0.71),
    student(2, 0.0, 4, 0.87, val_acc=0.72),
    student(0, 0.1, 1, 0.810), student(1, 0.1, 1, 0.821), student(2, 0.1, 1, 0.829),
    student(0, 0.1, 4, 0.84), student(1, 0.1, 4, 0.84), student(2, 0.1, 4, 0.84),
    student(3, 0.1, 4, 0.10),
    student(4, 0.1, 4, 0.10, status="failed"), student(5, 0.0, 4, "", status="failed"),
    teacher(0, 0.0, 0.93, 0.05, 0.01, 1.5), teacher(1, 0.0, 0.94, 0.06, 0.02, 1.6),
    teacher(0, 0.1, 0.94, 0.03, 0.02, 0.9), teacher(1, 0.1, 0.95, 0.04, 0.02, 0.8),
    baseline(0, 0.0, 0.78), baseline(1, 0.0, 0.79), baseline(2, 0.0, 0.80),
    baseline(0, 0.1, 0.79), baseline(1, 0.1, 0.80), baseline(2, 0.1, 0.80),
]
# Comparisons with an interval: paired at T=1 and T=4, Müller's LS-vs-plain, and the two Müller
# comparisons against the LS baseline. The accuracy-matched fits have teachers for two seeds only:
# 4 rows and 4 parameters (intercept, slope, alpha, seed), df = 0, so they are not counted.
STUDY_FAMILY = 5


def test_mean_interval_matches_hand_computed_t_interval():
    interval = mean_interval([-1.0, -2.0, -3.0])
    half_width = T_975_DOF2 * 1.0 / math.sqrt(3)
    assert half_width == pytest.approx(2.48414, abs=1e-5)
    assert (interval.mean, interval.low, interval.high, interval.n) == pytest.approx(
        (-2.0, -2.0 - half_width, -2.0 + half_width, 3))


def test_mean_interval_small_samples():
    one = mean_interval([0.5])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    none = mean_interval([])
    assert none.n == 0 and all(math.isnan(x) for x in (none.mean, none.low, none.high))


def test_interval_of_a_non_negative_metric_is_clipped_at_zero():
    assert Interval(0.01, -0.02, 0.04, 3).clipped() == Interval(0.01, 0.0, 0.04, 3)
    rows = [teacher(s, 0.0, 0.9, 0.05, ece_ts, 1.0) for s, ece_ts in enumerate([0.001, 0.002, 0.030])]
    raw = mean_interval([0.001, 0.002, 0.030])
    assert raw.low < 0  # the t interval itself would go below 0
    [entry] = build_verdict(rows)["teachers"]
    assert entry["test_ece_ts"]["low"] == 0.0 and entry["test_ece_ts"]["high"] == pytest.approx(raw.high)


def test_paired_difference_has_per_comparison_and_family_wise_intervals():
    verdict = build_verdict(STUDY)
    assert verdict["family"]["m"] == STUDY_FAMILY
    entry = paired_entry(verdict, 4.0, 0.1)
    assert [p["seed"] for p in entry["per_seed"]] == [0, 1, 2] and entry["unpaired_seeds"] == [3]
    assert [p["diff"] for p in entry["per_seed"]] == pytest.approx([-0.01, -0.02, -0.03])
    assert (entry["n"], entry["df"], entry["mean"]) == (3, 2, pytest.approx(-0.02))
    assert (entry["low"], entry["high"]) == pytest.approx((-0.02 - 0.0248414, -0.02 + 0.0248414), abs=1e-6)
    family = stats.t.interval(1 - 0.05 / STUDY_FAMILY, 2, loc=-0.02, scale=stats.sem([-0.01, -0.02, -0.03]))
    assert (entry["family_low"], entry["family_high"]) == pytest.approx(family)
    # Every seed lost accuracy, but the interval is far wider than ±0.5 pp: undecided, and it says how far.
    assert entry["verdict"] == UNDECIDED
    assert entry["mde"] > 0.02 and entry["seeds_needed"] > 3


def test_clear_gain_is_better_under_the_family_wise_interval():
    entry = paired_entry(build_verdict(STUDY), 1.0, 0.1)
    assert entry["family_low"] > 0 and entry["verdict"] == BETTER


def test_words_and_summary_state_the_holm_decision():
    rows = [student(s, 0.0, 2, 0.80) for s in range(3)]
    rows += [student(s, 0.1, 2, 0.80 - d) for s, d in enumerate([0.010, 0.011, 0.009])]
    rows += [student(s, 0.2, 2, 0.80 + d) for s, d in enumerate([0.010, 0.011, 0.009])]
    verdict = build_verdict(rows)
    assert verdict["family"]["m"] == 2  # the two paired ones; Müller's needs T=1 students, which are missing
    assert paired_entry(verdict, 2.0, 0.1)["verdict"] == "worse"
    assert paired_entry(verdict, 2.0, 0.2)["verdict"] == "better"
    assert any(line.startswith("T=2: LS-teacher (alpha=0.1) students are worse than plain-teacher students by 1.00 pp "
                               "(95% CI [") and "exploratory" in line and "Holm p" in line for line in verdict["summary"])


def test_undecided_sentence_says_how_far_from_a_decision():
    summary = build_verdict(STUDY)["summary"]
    [line] = [s for s in summary if s.startswith("T=4: LS-teacher (alpha=0.1)")]
    assert ": undecided, -2.00 pp" in line and "95% CI [-4.48, 0.48]" in line
    assert "smallest effect it could detect" in line and "seeds would bring its family-wise half-width to ±0.50 pp" in line


def test_single_seed_is_undecided_never_not_different():
    verdict = build_verdict([student(0, 0.0, 4, 0.90), student(0, 0.1, 4, 0.50)])
    entry = paired_entry(verdict, 4.0, 0.1)
    assert entry["n"] == 1 and entry["mean"] == pytest.approx(-0.40)
    assert entry["low"] is None and entry["family_low"] is None and entry["mde"] is None
    assert entry["verdict"] == "undecided (n = 1)"
    assert verdict["family"]["m"] == 0
    assert not any("not detectably" in line for line in verdict["summary"])
    assert "undecided (n = 1)" in render_markdown(verdict)


def test_paired_cell_without_plain_teacher_is_marked_missing():
    entry = paired_entry(build_verdict([student(0, 0.1, 8, 0.5), student(1, 0.1, 8, 0.6)]), 8.0, 0.1)
    assert entry["n"] == 0 and entry["mean"] is None and entry["verdict"] == "undecided (n = 0)"
    assert entry["missing"] == "no plain-teacher students at T=8"


def test_student_row_without_teacher_alpha_is_refused():
    row = student(0, 0.1, 1, 0.5)
    del row["teacher_alpha"]
    with pytest.raises(ValueError, match="teacher_alpha"):
        build_verdict([row])


def test_mueller_chooses_plain_temperature_by_val_acc_not_test_acc():
    mueller = build_verdict(STUDY)["mueller"]
    assert mueller["selection_metric"] == "val_acc"
    assert mueller["best_temperature"] == 1.0  # test_acc would pick T=4
    [ls_vs_plain] = mueller["ls_vs_plain"]
    assert ls_vs_plain["missing"] is None and ls_vs_plain["plain_temperature"] == 1.0
    assert [p["diff"] for p in ls_vs_plain["per_seed"]] == pytest.approx([0.010, 0.011, 0.009])
    assert ls_vs_plain["verdict"] == BETTER
    subjects = {(e["teacher_alpha"], e["temperature"], e["baseline_alpha"]) for e in mueller["vs_ls_baseline"]}
    assert subjects == {(0.0, 1.0, 0.1), (0.1, 1.0, 0.1)}
    plain_vs_baseline = [e for e in mueller["vs_ls_baseline"] if e["teacher_alpha"] == 0.0][0]
    assert [p["diff"] for p in plain_vs_baseline["per_seed"]] == pytest.approx([0.01, 0.01, 0.02])


def test_mueller_reports_missing_t1_student_and_missing_ls_baseline():
    rows = [student(s, 0.0, 4, 0.8) for s in range(2)] + [student(s, 0.1, 4, 0.8) for s in range(2)]
    mueller = build_verdict(rows)["mueller"]
    [ls_vs_plain] = mueller["ls_vs_plain"]
    assert "T=1" in ls_vs_plain["missing"] and ls_vs_plain["n"] == 0
    assert mueller["notes"] == ["no baseline student trained alone with LS"]


def test_failed_rows_are_ignored_and_counted():
    verdict = build_verdict(STUDY)
    assert verdict["failed"] == 2
    cells = {(c["alpha"], c["temperature"]): c["test_acc"] for c in verdict["cells"]["students"]}
    assert cells[(0.0, 4.0)]["n"] == 3  # the failed seed 5 is not in the cell


def test_csv_strings_are_coerced():
    rows = [{key: str(value) if value is not None else "" for key, value in row.items()} for row in STUDY]
    assert build_verdict(rows) == build_verdict(STUDY)


def test_teachers_cells_gap_and_test_size():
    rows = [dict(row, test_n=5000) if row["role"] == "teacher" else row for row in STUDY]
    verdict = build_verdict(rows)
    by_alpha = {t["alpha"]: t for t in verdict["teachers"]}
    assert by_alpha[0.1]["test_acc"]["mean"] == pytest.approx(0.945)
    assert by_alpha[0.0]["test_ts_temperature"]["mean"] == pytest.approx(1.55)
    assert by_alpha[0.0]["n"] == 2
    baselines = {b["alpha"]: b["test_acc"]["mean"] for b in verdict["cells"]["baselines"]}
    assert baselines == pytest.approx({0.0: 0.79, 0.1: 0.79666666})
    gap = {(g["alpha"], g["temperature"]): g for g in verdict["gap"]}
    assert gap[(0.1, 4.0)]["mean"] == pytest.approx(np.mean([0.94 - 0.84, 0.95 - 0.84]))  # seeds 0, 1 only
    assert verdict["test_n"] == 5000 and build_verdict(STUDY)["test_n"] is None


def test_verdict_is_strict_json_and_markdown_renders():
    verdict = build_verdict(STUDY + [student(9, 0.2, 4, 0.5)])
    markdown = render_markdown(json.loads(json.dumps(verdict, allow_nan=False)))
    for heading in ("### T=4", "## Müller's protocol", "## Teachers", "## Teacher accuracy held equal",
                    "## Mechanism", "## Teacher-student gap", "## Students trained alone", "<details>"):
        assert heading in markdown, heading
    assert "| 0.1 | -2.00 | [-4.48, 0.48] | [" in markdown  # diff, its 95% CI, then the family-wise CI
    assert "| 0.1 | 82.00 [" in markdown  # the alpha x T accuracy table: alpha 0.1 at T=1
    assert "Failed runs left out: 2." in markdown


def test_headline_plot_band_is_the_family_wise_interval():
    verdict = build_verdict(STUDY)
    figure = paired_difference_figure(verdict)
    [band] = [c for c in figure.axes[0].collections if isinstance(c, PolyCollection)]
    heights = band.get_paths()[0].vertices[:, 1]
    entries = sorted((e for e in verdict["paired"]), key=lambda e: e["temperature"])
    assert heights.min() == pytest.approx(100 * min(e["family_low"] for e in entries))
    assert heights.max() == pytest.approx(100 * max(e["family_high"] for e in entries))
    assert any(line.get_ydata()[0] == 0 for line in figure.axes[0].get_lines())  # the zero line


def test_plots_write_png_files(tmp_path: Path):
    rows = [dict(row) for row in STUDY]
    for row in rows:
        if row["role"] == "teacher":
            row.update(test_r2=0.3 + row["alpha"] + 0.01 * row["seed"], test_nc1=1.0 - row["alpha"])
    verdict = build_verdict(rows)
    points = torch.randn(30, 2, dtype=torch.float64)
    panels = [ProjectionPanel(alpha, 0, f"teacher-{alpha}", points * (1 + alpha), torch.arange(3).repeat(10),
                              torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.5]]), ["a", "b", "c"], 0.4, 0.2)
                 for alpha in (0.0, 0.1)]
    written = [
        plot_student_accuracy_vs_temperature(rows, tmp_path / "students.png"),
        plot_teacher_vs_alpha(rows, tmp_path / "teachers.png"),
        plot_tightness_vs_alpha(rows, tmp_path / "tightness.png"),
        plot_mechanism(verdict, tmp_path / "mechanism.png"),
        plot_teacher_projections(panels, tmp_path / "projections.png"),
    ]
    for path in written:
        assert path is not None and path.read_bytes()[:8] == PNG_MAGIC


def test_projection_panels_are_in_template_units():
    templates = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)  # distances 3, 4, 5
    panel = ProjectionPanel(0.1, 0, "run", templates.clone(), torch.arange(3), templates, ["a", "b", "c"], None, None)
    points, scaled = panel.scaled()
    assert torch.pdist(scaled).mean().item() == pytest.approx(1.0)
    assert torch.allclose(points, templates / 4.0)


def test_tightness_plot_skips_without_columns(tmp_path: Path):
    target = tmp_path / "tightness.png"
    assert plot_tightness_vs_alpha(STUDY, target) is None
    assert not target.exists()
