"""One invocation of a study: take the folder's lock, write the manifest, run what is
unfinished, and write the report (not when stopped by a signal: the study is not over)."""

from __future__ import annotations

import dataclasses
import fcntl
import contextlib
import hashlib
import json
import os
import socket
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from kd_ls import __version__, interrupts
from kd_ls.io import atomic_write_json
from kd_ls.layout import StudyLayout
from kd_ls.study.plan import PlannedRun, plan_study
from kd_ls.lightning.quiet import quiet
from kd_ls.study.ownership import claim_folder
from kd_ls.study.progress import StudyProgress, stage
from kd_ls.report.history import declare_primary
from kd_ls.study.runner import INTERRUPTED, ProgressFn, default_jobs, execute_study, process_pool, submitit_executor
from kd_ls.study.spec import Study, StudyError
from kd_ls.verdict import sequential


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


def write_manifest(study: Study, study_dir: Path, runs: Optional[list[PlannedRun]] = None,
                   sha256: Optional[str] = None) -> None:
    """study.json: the spec as declared, the study file's hash, and the planned runs (default: the
    study's own; more when seeds were added until decided), which `kd-ls report` reads."""
    runs = plan_study(study) if runs is None else runs
    atomic_write_json(StudyLayout.of(study_dir).manifest,
                      {"kd_ls_version": __version__, "study": study.to_dict(), "study_sha256": sha256,
                       "seeds": sorted({run.seed for run in runs}), "runs": [dataclasses.asdict(r) for r in runs]})


def seed_rounds(study: Study) -> list[list[int]]:
    """The seeds of each planned look: the study's seeds, then (with `until_decided`) new seeds, the
    next integers above the largest, added a round at a time up to `max_seeds`."""
    plan = study.until_decided
    looks = sequential.schedule(len(study.seeds), plan and plan.max_seeds, plan and plan.round)
    extra = list(range(max(study.seeds) + 1, max(study.seeds) + 1 + looks[-1] - len(study.seeds)))
    every = [*study.seeds, *extra]
    return [every[:n] for n in looks]


def source_sha256(study: Study, source: Optional[Path]) -> str:
    """SHA-256 of the study file `source`; without one (the shipped default study, or a study built
    in code), of the study's canonical JSON."""
    if source is not None:
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(study.to_dict(), sort_keys=True).encode()).hexdigest()


def _note_unplanned(display: StudyProgress, study_dir: Path, study: Study) -> None:
    """A note on run folders no run of the study (at its most seeds) owns: they are left alone."""
    unplanned = unplanned_run_folders(study_dir, {run.run_id for run in plan_study(study)})
    if unplanned:
        display.note(f"{len(unplanned)} run folder(s) in {StudyLayout.of(study_dir).runs} are not part of this "
                     "study's plan (an older kd-ls, or runs removed from the study file): left untouched, not used")


def progress_events(display: StudyProgress) -> ProgressFn:
    """The runner's events for the display, an interrupted run as a note (it is no failure)."""

    def on_event(kind: str, run: PlannedRun, record: Optional[dict[str, Any]]) -> None:
        if kind == "end" and record is not None and record.get("status") == INTERRUPTED:
            display.note(f"{run.label()} ({run.run_id}) {record.get('error')}: the next start resumes it")
        else:
            display.event(kind, run, record)

    return on_event


def run_study(study: Study, jobs: Optional[int] = None, progress: bool = True,
              source: Optional[Path] = None, adopt: bool = False) -> dict[str, Any]:
    """Run every unfinished run of `study`, then write and return its verdict.

    The folder must belong to the study file `source` (or be new, or `adopt` it): else a
    StudyError before anything is written (kd_ls/study/ownership.py).

    The primary question is declared in the folder's history before any run, with the hash of
    the study file `source` (None: the default study, or one built in code: its canonical JSON). With `until_decided`, seeds are
    added a round at a time (only the new seeds' runs train) until the primary is decided at a
    planned look or `max_seeds` is reached. `jobs` runs execute at once (default:
    runner.default_jobs); it changes speed, never results. Holds the study folder's lock
    throughout, so a second `kd-ls study` on the same folder refuses instead of racing this
    one. SIGINT / SIGTERM stop it in order (kd_ls/interrupts.py): `Interrupted` is raised, and
    the next call resumes."""
    with interrupts.handling(), interrupts.raising():
        return _run_study(study, jobs, progress, source_sha256(study, source), source, adopt)


def _write_report(study_dir: Path, pool: Optional[ProcessPoolExecutor]) -> dict[str, Any]:
    """The study's report, written in a worker of `pool` when there is one (and it still works),
    else here; the same files either way."""
    if pool is not None:
        try:
            return pool.submit(report_task, study_dir).result()
        except BrokenProcessPool:  # a worker was killed: this process writes it
            pass
    return report_task(study_dir)


def report_task(study_dir: Path) -> dict[str, Any]:
    """write_report, imported where it runs: the report loads torch and the plotting code."""
    from kd_ls.report.write import write_report

    return write_report(study_dir)


def _decided(study_dir: Path) -> bool:
    """Whether the runs so far decide the primary question (a look of the sequential plan)."""
    from kd_ls.report.write import collect_rows, decide  # loads torch: the main process needs it only now

    return decide(study_dir, collect_rows(study_dir))["primary"]["word"] != "undecided"


def _run_study(study: Study, jobs: Optional[int], progress: bool, sha256: str, source: Optional[Path],
               adopt: bool) -> dict[str, Any]:
    jobs = jobs or default_jobs(study)
    study_dir = make_folder(study)
    executor = submitit_executor(study, study_dir) if study.cluster.executor != "local" else None
    rounds = seed_rounds(study)
    quiet()  # W&B's summary run (and the report, without workers) run in this process, outside any run's harness
    parallel = study.cluster.max_parallel if executor else jobs
    # One pool of workers for every round and the report: spawned once, and the report runs in a
    # worker that has torch, Lightning and the data loaded already (about 5 s this process would pay).
    pool = process_pool(jobs) if executor is None and jobs > 1 else None
    with study_lock(study_dir), contextlib.ExitStack() as stack:
        if pool is not None:
            stack.callback(pool.shutdown, cancel_futures=True)
        owner_note = claim_folder(study_dir, source, adopt)
        declare_primary(study_dir, study.to_dict(), sha256)
        for number, seeds in enumerate(rounds, start=1):
            grown = dataclasses.replace(study, seeds=seeds)
            runs = plan_study(grown)
            with StudyProgress(runs, study_dir, parallel, enabled=progress) as display:
                if number == 1 and owner_note:
                    display.note(owner_note)
                if number == 1:
                    _note_unplanned(display, study_dir, dataclasses.replace(study, seeds=rounds[-1]))
                if number > 1:
                    display.note(f"primary undecided at {len(rounds[number - 2])} seeds: adding seeds "
                                 f"{seeds[len(rounds[number - 2]):]} (planned look {number} of {len(rounds)})")
                write_manifest(study, study_dir, runs, sha256)
                execute_study(grown, study_dir, jobs=jobs, on_event=progress_events(display), executor=executor,
                              pool=pool)
            if number < len(rounds) and _decided(study_dir):
                break
        with stage("writing verdict, report, plots", study_dir, enabled=progress):
            verdict = _write_report(study_dir, pool)
    if study.logger == "wandb":
        from kd_ls.study.tracking import log_study_summary

        log_study_summary(study, study_dir)
    return verdict
