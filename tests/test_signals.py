"""Stopping a study, and its exit codes: SIGTERM to a study with worker processes and Ctrl+C
(SIGINT to the whole process group) stop it at its runs in flight, which are recorded as
interrupted; nothing else starts; the exit code is 143 / 130; the next start resumes the
interrupted runs (not restarts them) to the results of an uninterrupted study. A submitit job
signalled for preemption is requeued and resumes. A study with failed runs exits 1.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_STUDY, results
from kd_ls.commands.main import main
from kd_ls.study import load_study, run_study
from kd_ls.study.plan import plan_study
from kd_ls.study.runner import SubmititRun, submitit_executor


@pytest.fixture(scope="module")
def study_file(tmp_path_factory) -> Path:
    """Three runs (teacher, baseline, student) of the tiny study, the teacher long enough
    (6 epochs of 1,440 samples in batches of 16) to be stopped in the middle."""
    raw = yaml.safe_load(TINY_STUDY.read_text())
    raw.update(dataset={"name": "mnist1d", "options": {"num_samples": 2000}}, seeds=[0], alphas=[0.0],
               temperatures=[2.0], baselines={"alone": True, "ls_alpha": 0.0})
    raw["teacher"].update(epochs=6, batch_size=16)
    raw["student"].update(epochs=3)
    path = tmp_path_factory.mktemp("signal_study") / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def study_at(study_file: Path, output: Path):
    study = load_study(study_file)
    study.output = str(output)
    return study


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    run_study(study_at(study_file, out), jobs=1, progress=False)
    return out


def saved_epochs(run_dir: Path) -> int:
    """Epochs in a run's resumable checkpoint (0: none yet)."""
    path = run_dir / "checkpoints" / "resume.ckpt"
    return torch.load(path, map_location="cpu", weights_only=False)["epoch"] + 1 if path.is_file() else 0


def records(study_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in study_dir.glob("runs/*/run.json")}


def stop_study(study_file: Path, out: Path, teacher: str, jobs: int, epochs: int, signum: int,
               whole_group: bool) -> tuple[int, str]:
    """`kd-ls study` in a subprocess (its own process group), sent `signum` once the teacher's
    resumable checkpoint holds `epochs` epochs; its exit code and last stderr line."""
    epochs = max(epochs, saved_epochs(out / "runs" / teacher) + 1)  # a running study, not one starting up
    command = [sys.executable, "-m", "kd_ls.commands.main", "study", "--config", str(study_file), "--output",
               str(out), "--jobs", str(jobs), "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    while proc.poll() is None and saved_epochs(out / "runs" / teacher) < epochs:
        time.sleep(0.02)
    if whole_group:
        os.killpg(proc.pid, signum)  # as Ctrl+C in a terminal does: the study and its workers
    else:
        os.kill(proc.pid, signum)  # as `kill PID` does: the study alone
    err = proc.communicate()[1].strip().splitlines()
    return proc.returncode, err[-1] if err else ""


def test_a_stopped_study_resumes_its_interrupted_run(reference, study_file, tmp_path):
    out = tmp_path / "study"
    teacher = plan_study(study_at(study_file, out))[0].run_id

    code, last_line = stop_study(study_file, out, teacher, jobs=2, epochs=2, signum=signal.SIGTERM, whole_group=False)
    assert code == 143 and last_line.startswith("kd-ls: stopped by SIGTERM; "), last_line
    first = records(out)
    assert first[teacher]["status"] == "interrupted" and first[teacher]["error"] == "stopped by SIGTERM"
    assert first[teacher]["resumed_after_epoch"] is None  # the first attempt started afresh
    assert {p.name for p in (out / "runs").iterdir()} == set(first)  # nothing started that left no record
    assert all(r["status"] in ("done", "interrupted") for r in first.values())
    assert not (out / "verdict.json").exists()  # a stopped study writes no verdict

    code, last_line = stop_study(study_file, out, teacher, jobs=1, epochs=4, signum=signal.SIGINT, whole_group=True)
    assert code == 130 and last_line.startswith("kd-ls: stopped by SIGINT; "), last_line
    second = records(out)[teacher]
    assert second["status"] == "interrupted" and second["resumed_after_epoch"] >= 2

    main(["study", "--config", str(study_file), "--output", str(out), "--jobs", "1", "--no-progress"])  # exit 0
    assert records(out)[teacher]["resumed_after_epoch"] >= 4
    assert results(out) == results(reference)


def controller_child(controller: int) -> int:
    """The task process submitit's local controller started (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == controller:
            return int(stat.parent.name)
    raise LookupError(f"no child of {controller}")


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the submitit task through /proc")
def test_a_preempted_submitit_job_is_requeued_and_resumes(reference, study_file, tmp_path):
    pytest.importorskip("submitit")
    study = study_at(study_file, tmp_path / "submitit")
    study.cluster.executor, study.cluster.cpus_per_task = "submitit-local", 1
    teacher = plan_study(study)[0]
    study_dir = Path(study.output)
    job = submitit_executor(study, study_dir).submit(SubmititRun(), study, teacher, study_dir)
    while not job.done() and saved_epochs(study_dir / "runs" / teacher.run_id) < 1:
        time.sleep(0.02)
    assert not job.done()
    # SLURM's notice before a preemption or the time limit (submitit asks for SIGUSR2)
    os.kill(controller_child(int(job.job_id)), signal.SIGUSR2)
    record = job.result()
    assert record["status"] == "done" and record["resumed_after_epoch"] >= 1
    assert record["metrics"] == records(reference)[teacher.run_id]["metrics"]


def test_a_study_with_failed_runs_exits_1_and_says_it_is_incomplete(study_file, tmp_path, capsys):
    raw = yaml.safe_load(study_file.read_text())
    raw["teacher"]["lr"] = 1e30  # the teacher diverges: it and its student fail, the baseline finishes
    raw["output"] = str(tmp_path / "failing")
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--config", str(path), "--jobs", "1", "--no-progress"])
    assert exit_info.value.code == 1
    verdict = json.loads((tmp_path / "failing" / "verdict.json").read_text())
    assert verdict["incomplete"] is True
    assert verdict["run_counts"] == {"planned": 3, "done": 1, "failed": 2, "interrupted": 0, "missing": 0}
    assert "**Incomplete:** 2 of 3 planned runs did not finish (2 failed" in (tmp_path / "failing" / "verdict.md").read_text()
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "kd-ls: incomplete: 2 of 3 planned runs did not finish (2 failed); their errors are in results.csv"
