"""One invocation of a study: take the folder's lock, write the manifest, run what is
unfinished, and write the report (not when stopped by a signal: the study is not over)."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from kd_ls import __version__, interrupts
from kd_ls.io import atomic_write_json
from kd_ls.layout import StudyLayout
from kd_ls.study.plan import PlannedRun, plan_study
from kd_ls.lightning.quiet import quiet
from kd_ls.study.progress import StudyProgress
from kd_ls.report.write import write_report
from kd_ls.study.runner import INTERRUPTED, ProgressFn, default_jobs, execute_study, submitit_executor
from kd_ls.study.spec import Study, StudyError


@contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Exclusive lock on a study folder (flock on study_dir/.lock).

    The kernel drops the lock when its process dies, so a crashed study never leaves the
    folder stuck; the file keeps the holder's pid for the error message."""
    handle = open(StudyLayout.of(study_dir).lock, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StudyError(f"study.output: '{study_dir}' is in use by {holder}; wait for it to finish") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def make_folder(study: Study) -> Path:
    """Create the study folder, checking that it is writable (a one-line error if not)."""
    study_dir = Path(study.output)
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        probe = study_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise StudyError(f"study.output: cannot write to '{study_dir}' ({err.strerror})") from None
    return study_dir


def unplanned_run_folders(study_dir: Path, planned: set[str]) -> list[Path]:
    """Run folders of the study folder that no planned run owns."""
    runs = StudyLayout.of(study_dir).runs
    return sorted(p for p in runs.iterdir() if p.is_dir() and p.name not in planned) if runs.is_dir() else []


def write_manifest(study: Study, study_dir: Path) -> None:
    """study.json: the spec and its planned runs (what `kd-ls report` reads)."""
    runs = [dataclasses.asdict(r) for r in plan_study(study)]
    atomic_write_json(StudyLayout.of(study_dir).manifest,
                      {"kd_ls_version": __version__, "study": study.to_dict(), "runs": runs})


def progress_events(display: StudyProgress) -> ProgressFn:
    """The runner's events for the display, an interrupted run as a note (it is no failure)."""

    def on_event(kind: str, run: PlannedRun, record: Optional[dict[str, Any]]) -> None:
        if kind == "end" and record is not None and record.get("status") == INTERRUPTED:
            display.note(f"{run.label()} ({run.run_id}) {record.get('error')}: the next start resumes it")
        else:
            display.event(kind, run, record)

    return on_event


def run_study(study: Study, jobs: Optional[int] = None, progress: bool = True) -> dict[str, Any]:
    """Run every unfinished run of `study`, then write and return its verdict.

    `jobs` runs execute at once (default: runner.default_jobs); it changes speed, never
    results. Holds the study folder's lock throughout, so a second `kd-ls study` on the same
    folder refuses instead of racing this one. SIGINT / SIGTERM stop it in order
    (kd_ls/interrupts.py): `Interrupted` is raised, and the next call resumes."""
    with interrupts.handling(), interrupts.raising():
        return _run_study(study, jobs, progress)


def _run_study(study: Study, jobs: Optional[int], progress: bool) -> dict[str, Any]:
    jobs = jobs or default_jobs(study)
    study_dir = make_folder(study)
    executor = submitit_executor(study, study_dir) if study.cluster.executor != "local" else None
    runs = plan_study(study)
    quiet()  # W&B's summary run and the report run in this process, outside any run's harness
    parallel = study.cluster.max_parallel if executor else jobs
    with study_lock(study_dir), StudyProgress(runs, study_dir, parallel, enabled=progress) as display:
        unplanned = unplanned_run_folders(study_dir, {run.run_id for run in runs})
        if unplanned:
            display.note(f"{len(unplanned)} run folder(s) in {StudyLayout.of(study_dir).runs} are not part of this "
                         "study's plan (an older kd-ls, or runs removed from the study file): left untouched, not used")
        write_manifest(study, study_dir)
        execute_study(study, study_dir, jobs=jobs, on_event=progress_events(display), executor=executor)
        verdict = write_report(study_dir)
    if study.logger == "wandb":
        from kd_ls.study.tracking import log_study_summary

        log_study_summary(study, study_dir)
    return verdict
