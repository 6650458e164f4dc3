"""What kd-ls tells a user while it works: a fit's progress in epochs and optimizer steps, a
study's plain progress lines (and its log) with a time left from the first finished run on,
and `kd-ls study --dry-run`'s plan. Real runs; no timing is asserted, only what is shown."""

import re

from conftest import TEACHER_CONFIG, TINY_STUDY, fit, tiny
from kd_ls.commands.main import main
from kd_ls.layout import StudyLayout
from kd_ls.study import run_study

LEFT = re.compile(r"left (\?|~?\d+:\d\d:\d\d(?: \(rough\))?)$")


def test_fit_progress_counts_epochs_and_optimizer_steps(tmp_path, capsys):
    """steps_per_call=64 makes one Lightning call per epoch; the lines count optimizer steps."""
    fit(TEACHER_CONFIG, tmp_path, "--trainer.enable_progress_bar", "true")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kd-ls fit: ")]
    found = [re.search(r"epoch (\d+)/4  step (\d+)/(\d+)  .* left", line) for line in lines]
    assert len(found) == 4 and all(found), lines
    epochs, steps, totals = zip(*((int(a), int(b), int(c)) for a, b, c in (m.groups() for m in found)))
    per_epoch = totals[0] // 4  # one optimizer step per batch of 32, though one Lightning call per epoch
    assert epochs == (1, 2, 3, 4) and per_epoch > 1 and steps == tuple(per_epoch * e for e in epochs)
    assert "val/acc" in lines[-1] and "train/loss" in lines[-1]


def test_study_prints_plain_lines_and_logs_them(tmp_path, capsys):
    """Without a terminal: a line per started and finished run with counts and the time left,
    known from the first finished run on; the same lines in the study's log."""
    study = tiny(tmp_path, seeds=[0], temperatures=[1.0])  # 2 teachers, 2 students, 2 baselines
    run_study(study, jobs=1, progress=True)
    shown = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    logged = StudyLayout.of(tmp_path).log.read_text().splitlines()
    assert [line[11:] for line in shown] == [line[11:] for line in logged]  # the same, after the clock
    runs = [line[11:] for line in logged if line[11:].startswith(("start", "done"))]
    assert len(runs) == 12 and runs[-1].startswith("done") and "6/6 done, 0 failed, 0 running" in runs[-1]
    first_done = next(i for i, line in enumerate(runs) if line.startswith("done"))
    assert all(LEFT.search(line) for line in runs)
    assert all(LEFT.search(line).group(1) != "?" for line in runs[first_done:])  # known from the first done run
    assert logged[-3][11:].startswith("study ended after")  # then the step after training, named
    assert logged[-2][11:] == "writing verdict, report, plots ..."
    assert logged[-1][11:].startswith("writing verdict, report, plots: done in ")


def test_dry_run_shows_the_plan_and_trains_nothing(reference_study, tmp_path, capsys):
    main(["study", "--config", str(TINY_STUDY), "--output", str(reference_study), "--dry-run"])
    finished = capsys.readouterr().out
    assert "16 runs planned, 16 finished, 0 to run" in finished and "To run: nothing" in finished
    fresh = tmp_path / "fresh"
    main(["study", "--config", str(TINY_STUDY), "--output", str(fresh), "--dry-run", "--jobs", "1"])
    plan = capsys.readouterr().out
    assert "16 runs planned, 0 finished, 16 to run (1 at a time)" in plan
    for role, runs in (("teacher", 4), ("baseline", 4), ("student", 8)):
        assert re.search(rf"^{role}\s+{runs}\s+0\s+{runs}\s+2\s+\S+ [kMG]?FLOP", plan, re.M), plan
    assert "Training compute of the runs to do:" in plan and "known once a run of this study has finished" in plan
    assert not (fresh / "runs").exists()  # nothing trained
