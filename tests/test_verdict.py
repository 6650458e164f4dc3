"""Tests of the study statistics, verdict and plots on small hand-made results tables."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kd_ls.plots.study import (
    plot_student_accuracy_vs_temperature,
    plot_teacher_vs_alpha,
    plot_tightness_vs_alpha,
)
from kd_ls.study.stats import BETTER, NO_DIFFERENCE, WORSE, Interval, mean_interval, verdict_word
from kd_ls.study.render import render_markdown
from kd_ls.study.verdict import build_verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T_975_DOF2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2), also in printed t tables


def student(seed, alpha, temperature, test_acc, val_acc=0.5, status="done"):
    """A student row as the runner writes it."""
    return {"role": "student", "status": status, "seed": seed, "alpha": alpha,
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
# At T=4 the LS-teacher students lose 1, 2, 3 pp on seeds 0, 1, 2 (clearly negative).
# At T=1 they gain 1.0, 1.1, 0.9 pp (clearly positive).
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


def test_mean_interval_matches_hand_computed_t_interval():
    interval = mean_interval([-1.0, -2.0, -3.0])
    half_width = T_975_DOF2 * 1.0 / math.sqrt(3)
    assert half_width == pytest.approx(2.48414, abs=1e-5)
    assert interval.mean == pytest.approx(-2.0)
    assert interval.low == pytest.approx(-2.0 - half_width)
    assert interval.high == pytest.approx(-2.0 + half_width)
    assert interval.n == 3


def test_mean_interval_small_samples():
    one = mean_interval([0.5])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    none = mean_interval([])
    assert none.n == 0 and all(math.isnan(x) for x in (none.mean, none.low, none.high))


@pytest.mark.parametrize(
    ("interval", "word"),
    [
        (Interval(-2.0, -3.0, -1.0, 3), WORSE),
        (Interval(2.0, 1.0, 3.0, 3), BETTER),
        (Interval(0.1, -1.0, 1.2, 3), NO_DIFFERENCE),
        (Interval(-5.0, math.nan, math.nan, 1), NO_DIFFERENCE),
        (Interval(math.nan, math.nan, math.nan, 0), NO_DIFFERENCE),
    ],
)
def test_verdict_word(interval, word):
    assert verdict_word(interval) == word


def test_paired_difference_uses_common_seeds_and_t_interval():
    verdict = build_verdict(STUDY)
    entry = paired_entry(verdict, 4.0, 0.1)
    assert [p["seed"] for p in entry["per_seed"]] == [0, 1, 2]
    assert entry["unpaired_seeds"] == [3]
    assert [p["diff"] for p in entry["per_seed"]] == pytest.approx([-0.01, -0.02, -0.03])
    assert entry["n"] == 3
    assert entry["mean"] == pytest.approx(-0.02)
    assert entry["low"] == pytest.approx(-0.02 - 0.0248414, abs=1e-6)
    assert entry["high"] == pytest.approx(-0.02 + 0.0248414, abs=1e-6)
    # The interval [-4.48, 0.48] pp straddles zero although every seed lost accuracy.
    assert entry["verdict"] == NO_DIFFERENCE


def test_paired_words_negative_and_positive():
    rows = [student(s, 0.0, 2, 0.80) for s in range(3)]
    rows += [student(s, 0.1, 2, 0.80 - d) for s, d in enumerate([0.010, 0.011, 0.009])]
    rows += [student(s, 0.2, 2, 0.80 + d) for s, d in enumerate([0.010, 0.011, 0.009])]
    verdict = build_verdict(rows)
    assert paired_entry(verdict, 2.0, 0.1)["verdict"] == WORSE
    assert paired_entry(verdict, 2.0, 0.2)["verdict"] == BETTER
    summary = verdict["summary"]
    assert any(line.startswith("T=2: LS-teacher (alpha=0.1) students are worse than plain-teacher students by 1.00 pp")
               for line in summary)
    assert paired_entry(build_verdict(STUDY), 1.0, 0.1)["verdict"] == BETTER


def test_summary_states_interval_and_straddling_case_softly():
    summary = build_verdict(STUDY)["summary"]
    assert ("T=1: LS-teacher (alpha=0.1) students are better than plain-teacher students "
            "by 1.00 pp [95% CI 0.75, 1.25], n=3") in summary
    assert ("T=4: LS-teacher (alpha=0.1) students are not detectably different from plain-teacher students: "
            "-2.00 pp [95% CI -4.48, 0.48], n=3") in summary


def test_paired_cell_without_plain_teacher_is_marked_missing():
    entry = paired_entry(build_verdict([student(0, 0.1, 8, 0.5), student(1, 0.1, 8, 0.6)]), 8.0, 0.1)
    assert entry["n"] == 0 and entry["mean"] is None
    assert entry["missing"] == "no plain-teacher students at T=8"


def test_single_seed_gives_no_detectable_difference():
    verdict = build_verdict([student(0, 0.0, 4, 0.90), student(0, 0.1, 4, 0.50)])
    entry = paired_entry(verdict, 4.0, 0.1)
    assert entry["n"] == 1 and entry["mean"] == pytest.approx(-0.40)
    assert entry["low"] is None and entry["high"] is None
    assert entry["verdict"] == NO_DIFFERENCE


def test_mueller_chooses_plain_temperature_by_val_acc_not_test_acc():
    mueller = build_verdict(STUDY)["mueller"]
    assert mueller["selection_metric"] == "val_acc"
    assert mueller["best_temperature"] == 1.0  # test_acc would pick T=4
    [ls_vs_plain] = mueller["ls_vs_plain"]
    assert ls_vs_plain["missing"] is None
    assert ls_vs_plain["plain_temperature"] == 1.0
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


def test_teachers_and_cells():
    verdict = build_verdict(STUDY)
    by_alpha = {t["alpha"]: t for t in verdict["teachers"]}
    assert by_alpha[0.1]["test_acc"]["mean"] == pytest.approx(0.945)
    assert by_alpha[0.0]["test_ts_temperature"]["mean"] == pytest.approx(1.55)
    assert by_alpha[0.0]["n"] == 2
    baselines = {b["alpha"]: b["test_acc"]["mean"] for b in verdict["cells"]["baselines"]}
    assert baselines == pytest.approx({0.0: 0.79, 0.1: 0.79666666})


def test_verdict_is_strict_json_and_markdown_renders():
    verdict = build_verdict(STUDY + [student(9, 0.2, 4, 0.5)])
    text = json.dumps(verdict, allow_nan=False)
    markdown = render_markdown(json.loads(text))
    assert "### T=4" in markdown and "## Müller's protocol" in markdown and "## Teachers" in markdown
    assert "| 0.1 | -2.00 | [-4.48, 0.48] | 3 | no detectable difference |" in markdown
    assert "T=1" in markdown and "Failed runs left out: 2." in markdown


def test_plots_write_png_files(tmp_path: Path):
    rows = [dict(row) for row in STUDY]
    for row in rows:
        if row["role"] == "teacher":
            row.update(test_r2=0.3 + row["alpha"], test_nc1=1.0 - row["alpha"])
    written = [
        plot_student_accuracy_vs_temperature(rows, tmp_path / "students.png"),
        plot_teacher_vs_alpha(rows, tmp_path / "teachers.png"),
        plot_tightness_vs_alpha(rows, tmp_path / "tightness.png"),
    ]
    for path in written:
        assert path is not None and path.read_bytes()[:8] == PNG_MAGIC


def test_tightness_plot_skips_without_columns(tmp_path: Path):
    target = tmp_path / "tightness.png"
    assert plot_tightness_vs_alpha(STUDY, target) is None
    assert not target.exists()
