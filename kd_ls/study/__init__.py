"""Whole teacher/student studies: plan, run (resumably), and report a verdict."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from kd_ls import __version__
from kd_ls.io import atomic_write_json
from kd_ls.study.plan import plan_study
from kd_ls.study.progress import StudyProgress
from kd_ls.study.report import write_report
from kd_ls.study.runner import execute_study, submitit_executor
from kd_ls.study.spec import Study, StudyError, default_study, load_study, parse_study


@contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Exclusive lock on a study folder (flock on study_dir/.lock).

    The kernel drops the lock when its process dies, so a crashed study never leaves the
    folder stuck; the file keeps the holder's pid for the error message."""
    handle = open(study_dir / ".lock", "a+")
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


def write_manifest(study: Study, study_dir: Path) -> None:
    """study.json: the spec and its planned runs (what `kd-ls report` reads)."""
    runs = [dataclasses.asdict(r) for r in plan_study(study)]
    atomic_write_json(study_dir / "study.json", {"kd_ls_version": __version__, "study": study.to_dict(), "runs": runs})


def run_study(study: Study, jobs: int = 1, progress: bool = True) -> dict[str, Any]:
    """Run every unfinished run of `study`, then write and return its verdict.

    Holds the study folder's lock throughout, so a second `kd-ls study` on the same folder
    refuses instead of racing this one."""
    study_dir = make_folder(study)
    executor = submitit_executor(study, study_dir) if study.cluster.executor != "local" else None
    with study_lock(study_dir), StudyProgress(len(plan_study(study)), enabled=progress) as display:
        write_manifest(study, study_dir)
        execute_study(study, study_dir, jobs=jobs, on_event=display.event, executor=executor)
        verdict = write_report(study_dir)
    if study.logger == "wandb":
        from kd_ls.tracking import log_study_summary

        log_study_summary(study, study_dir)
    return verdict


__all__ = ["Study", "StudyError", "default_study", "load_study", "parse_study", "run_study", "write_report"]
