"""Studies on real MNIST-1D: resume after SIGKILL, no retraining, failures, W&B, submitit."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import TINY_STUDY, results, tiny
from kd_ls.commands.main import main
from kd_ls.study import run_study


def test_study_writes_results_verdict_and_plots(reference_study):
    rows = results(reference_study)
    assert len(rows) == 16  # 4 teachers + 4 baselines + 8 students
    assert {r["role"] for r in rows} == {"teacher", "student", "baseline"}
    assert all(r["status"] == "done" for r in rows)
    teacher = next(r for r in rows if r["role"] == "teacher")
    for column in ("test_acc", "test_nll", "test_ece", "test_ece_ts", "test_ts_temperature",
                   "test_smoothness_T1", "test_smoothness_T4", "test_r2", "test_nc1", "model.alpha", "trainer.max_epochs"):
        assert teacher[column] != "", column
    student = next(r for r in rows if r["role"] == "student")
    assert student["test_agreement"] != "" and student["test_kl_teacher"] != ""
    verdict = json.loads((reference_study / "verdict.json").read_text())
    assert {(e["temperature"], e["alpha"]) for e in verdict["paired"]} == {(1.0, 0.2), (4.0, 0.2)}
    assert "Müller" in (reference_study / "verdict.md").read_text()
    for png in ("student_accuracy_vs_temperature", "teacher_vs_alpha", "tightness_vs_alpha"):
        assert (reference_study / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    # each run folder is named by its config hash and holds config, checkpoint and metrics
    for row in rows:
        folder = reference_study / "runs" / row["run_id"]
        assert (folder / "config.yaml").is_file() and (folder / "metrics.json").is_file()
        assert (folder / "checkpoints" / "last.ckpt").is_file()


def test_second_invocation_retrains_nothing(reference_study):
    stamps = {p: p.stat().st_mtime_ns for p in reference_study.glob("runs/*/run.json")}
    before = results(reference_study)
    started = []
    from kd_ls.study import runner

    runner.execute_study(tiny(reference_study), reference_study, on_event=lambda k, r, rec: started.append(k))
    assert started == ["skip"] * 16
    assert {p: p.stat().st_mtime_ns for p in reference_study.glob("runs/*/run.json")} == stamps
    main(["report", str(reference_study)])  # rebuilding the report trains nothing either
    assert results(reference_study) == before


def one_seed_of(reference_study: Path, tmp_path: Path) -> tuple[Path, list[dict]]:
    """The tiny study's seed 0 as a study file, and the reference study's rows of those runs:
    run ids are config hashes, so a sub-grid's runs are the same runs as the full grid's."""
    raw = yaml.safe_load(TINY_STUDY.read_text())
    path = tmp_path / "seed0.yaml"
    path.write_text(yaml.safe_dump({**raw, "seeds": [0]}))
    return path, [r for r in results(reference_study) if r["seed"] == "0"]


def test_resume_after_sigkill_in_parallel_matches_uninterrupted(reference_study, tmp_path):
    out = tmp_path / "killed"
    study_file, expected = one_seed_of(reference_study, tmp_path)  # 8 runs
    command = [sys.executable, "-m", "kd_ls.commands.main", "study", "--config", str(study_file), "--output", str(out),
               "--jobs", "2", "--no-progress"]
    random.seed(os.getpid())
    # killed at a random point (after 1 to 6 of its 8 runs), then let it finish
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    target = random.randint(1, 6)
    while time.time() < deadline and len(list(out.glob("runs/*/run.json"))) < target and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the study and its workers
    proc.wait()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert results(out) == expected


def test_failing_runs_are_recorded_and_the_rest_complete(tmp_path):
    study = tiny(tmp_path)
    study.teacher.lr = 1e30  # every teacher diverges to NaN
    run_study(study, progress=False)
    rows = results(tmp_path)
    teachers = [r for r in rows if r["role"] == "teacher"]
    assert all(r["status"] == "failed" and "FloatingPointError" in r["error"] for r in teachers)
    students = [r for r in rows if r["role"] == "student"]
    assert all(r["status"] == "failed" and r["error"].startswith("teacher teacher-") for r in students)
    assert all(r["status"] == "done" for r in rows if r["role"] == "baseline")
    assert json.loads((tmp_path / "verdict.json").read_text())["failed"] == 12


def test_submitit_local_executor_gives_the_same_results(reference_study, tmp_path):
    """The SLURM path through submitit's local executor: same folders, same results."""
    # one teacher, its student and both baselines: each submitit job is a fresh interpreter
    study = tiny(tmp_path / "submitit", seeds=[0], alphas=[0.2], temperatures=[4.0])
    study.cluster.executor = "submitit-local"
    study.cluster.cpus_per_task = 1  # the reference ran 2 workers with 1 thread each
    study.cluster.max_parallel = 2
    run_study(study, progress=False)
    rows = results(tmp_path / "submitit")
    assert len(rows) == 4 and rows == [r for r in results(reference_study) if r["run_id"] in {x["run_id"] for x in rows}]
    assert list((tmp_path / "submitit" / "submitit").glob("*_log.out"))


def test_tampered_files_are_detected_and_redone(reference_study, tmp_path):
    import shutil

    from kd_ls.study import runner

    study_dir = tmp_path / "copy"
    shutil.copytree(reference_study, study_dir)
    rows = results(study_dir)
    teacher = next(r["run_id"] for r in rows if r["role"] == "teacher")
    student = next(r["run_id"] for r in rows if r["role"] == "student" and r["teacher_id"] != teacher)
    ckpt = study_dir / "runs" / teacher / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated checkpoint
    metrics = study_dir / "runs" / student / "metrics.json"
    metrics.write_text(metrics.read_text().replace('"test/acc": 0', '"test/acc": 1'))  # edited metrics
    events = []
    study = tiny(study_dir)
    runner.execute_study(study, study_dir, jobs=2, on_event=lambda kind, run, rec: events.append((kind, run.run_id, rec)))
    redone = {run_id: rec["reason"] for kind, run_id, rec in events if kind == "redo"}
    its_students = {r["run_id"] for r in rows if r["teacher_id"] == teacher}
    assert redone == {teacher: "checkpoint does not match its recorded SHA-256",
                      student: "metrics.json does not match its recorded SHA-256",
                      **{s: "teacher checkpoint does not match its recorded SHA-256" for s in its_students}}
    main(["report", str(study_dir)])
    assert results(study_dir) == rows  # redone deterministically: same numbers as before
