"""Run a study's graph: skip what is finished, resume what a stop left half-done, record
failures and carry on, optionally several runs at once in worker processes.

A run counts as finished only when its `run.json` record says so; that file is written
atomically after everything else. Every run saves a resumable checkpoint at the end of its
epochs, so a study stopped at any moment (SIGKILL included) loses at most the epoch each run in
flight was in: the next start resumes those runs from their checkpoints. SIGINT and SIGTERM
stop a study in order (kd_ls/interrupts.py): the runs in flight are recorded as interrupted,
no further run starts, and `execute_study` raises `Interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from kd_ls import interrupts
from kd_ls.io import atomic_write_json, sha256_file
from kd_ls.layout import RunLayout, StudyLayout
from kd_ls.records import DONE, FAILED, INTERRUPTED, read_record
from kd_ls.study import devices
from kd_ls.study.plan import PlannedRun, plan_study
from kd_ls.study.spec import Study, StudyError

NOT_RUN = "not run yet"


def _sha(path: Path) -> Optional[str]:
    return sha256_file(path) if path.is_file() else None


def stale_reason(study_dir: Path, run_id: str) -> Optional[str]:
    """Why a run must be (re)done, or None when it finished and its files are intact.

    The record holds the SHA-256 of the run's checkpoint and metrics.json, and for students
    of their teacher's checkpoint: a truncated or edited file, or a teacher retrained since,
    means the run is redone rather than silently reused."""
    record = read_record(study_dir, run_id)
    layout = StudyLayout.of(study_dir)
    run = layout.run(run_id)
    if record is None or record.get("status") == INTERRUPTED:
        epochs = resumable_epochs(run)
        if epochs is not None:
            return f"stopped before it finished; resumes after epoch {epochs}"
        return NOT_RUN if record is None else f"{record.get('error')} before its first saved epoch"
    if record.get("status") != DONE:
        return f"failed before ({record.get('error')})"
    checks = {run.metrics.name: (run.metrics, record.get("metrics_sha256")),
              "checkpoint": (run.last_checkpoint, record.get("checkpoint_sha256"))}
    if record.get("teacher_id"):
        checks["teacher checkpoint"] = (layout.run(record["teacher_id"]).last_checkpoint,
                                        record.get("teacher_checkpoint_sha256"))
    for name, (path, expected) in checks.items():
        if _sha(path) != expected:
            return f"{name} does not match its recorded SHA-256"
    return None


def is_finished(study_dir: Path, run_id: str) -> bool:
    """True when the run completed and its files still match their checksums."""
    return stale_reason(study_dir, run_id) is None


def cli_config(study: Study, run: PlannedRun, study_dir: Path) -> dict[str, Any]:
    """The complete `kd-ls fit` config of a run: its planned config plus where things go."""
    layout = StudyLayout.of(study_dir)
    folder = layout.run(run.run_id).root
    config = json.loads(json.dumps(run.config))
    config["trainer"].update({"default_root_dir": str(folder), "enable_progress_bar": False,
                              "enable_model_summary": False})
    config["trainer"].update(skip_epoch_validation(config["trainer"]))
    if run.teacher_id is not None:
        config["model"]["init_args"]["teacher_ckpt"] = str(layout.run(run.teacher_id).last_checkpoint)
    if study.logger == "wandb":
        from kd_ls.study.tracking import study_wandb_logger

        config["trainer"]["logger"] = study_wandb_logger(study, run, folder)
    return config


def skip_epoch_validation(trainer: dict[str, Any]) -> dict[str, Any]:
    """Trainer settings skipping validation during fit: a study reads val metrics from metrics.json
    (final weights, after fit), never the per-epoch curve (3-7% of a run). Validation draws no
    random numbers, so results are unchanged; not part of run ids. A study's own setting wins."""
    epochs = trainer.get("max_epochs")
    if any(k in trainer for k in ("check_val_every_n_epoch", "val_check_interval")) or not epochs or epochs < 1:
        return {}
    return {"check_val_every_n_epoch": epochs + 1, "num_sanity_val_steps": 0}


def quiet_lightning() -> None:
    """Keep Lightning's per-run chatter out of the study's progress display."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")


def innermost(err: BaseException) -> BaseException:
    """The root cause of a chain of wrapped exceptions."""
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def run_identity(run: PlannedRun) -> dict[str, Any]:
    """The fields that say which run a record belongs to."""
    return {"run_id": run.run_id, "role": run.role, "seed": run.seed, "alpha": run.alpha,
            "teacher_alpha": run.teacher_alpha, "temperature": run.temperature, "teacher_id": run.teacher_id,
            "loss": run.loss}


def resumable_epochs(layout: RunLayout) -> Optional[int]:
    """The epochs an unfinished run's resumable checkpoint holds, or None without a usable one."""
    if not layout.resume_checkpoint.is_file():
        return None
    from kd_ls.lightning.harness import saved_epochs

    try:
        return saved_epochs(layout.resume_checkpoint)
    except ValueError:  # unreadable: the run starts afresh
        return None


def prepare_folder(layout: RunLayout, config_text: str) -> Optional[int]:
    """Make a run folder ready for an attempt; return the epochs it resumes after (None: afresh).

    An earlier attempt's folder is kept when its resumable checkpoint was saved under this very
    config (a speed-only setting such as steps_per_call changes the config, not the run id);
    otherwise it is removed. The earlier attempt's record goes either way: this attempt writes
    its own when it ends."""
    epochs = resumable_epochs(layout)
    if epochs is not None and layout.study_config.is_file() and layout.study_config.read_text() == config_text:
        layout.record.unlink(missing_ok=True)
        return epochs
    if layout.root.exists():
        shutil.rmtree(layout.root)
    layout.root.mkdir(parents=True)
    layout.study_config.write_text(config_text)
    return None


def execute_run(study: Study, run: PlannedRun, study_dir: Path, own_signals: bool = True) -> dict[str, Any]:
    """Train (or resume) one run in this process; write and return its record: done, failed,
    or interrupted by a stop request.

    With `own_signals`, kd-ls's stop handling applies (kd_ls/interrupts.py: a stop raises in
    the run at once); without, the process's own handlers do (a submitit job), and a stop is
    re-raised after the record is written, so that submitit's requeue exit reaches submitit.

    torch's CPU threads are pinned to `study.threads`: float32 reductions depend on the thread
    count, so it is a setting of the study (and part of run ids), never derived from how many
    runs execute at once."""
    import torch

    from kd_ls.lightning.harness import KDLightningCLI

    torch.set_num_threads(study.threads)
    quiet_lightning()
    layout = StudyLayout.of(study_dir).run(run.run_id)
    record = run_identity(run)
    start = time.perf_counter()
    try:
        with interrupts.raising() if own_signals else contextlib.nullcontext():
            config = yaml.safe_dump(cli_config(study, run, study_dir), sort_keys=False)
            record["resumed_after_epoch"] = prepare_folder(layout, config)
            KDLightningCLI(args=["fit", "--config", str(layout.study_config)])
        record.update(_finished(layout))
    except BaseException as err:  # noqa: BLE001 - a failed or stopped run is recorded, the study goes on
        stop = interrupts.signal_of(err)
        record.update(_failed(err) if stop is None else _stopped(stop))
        if stop is not None and not own_signals:
            _write_record(layout, record, start)
            raise
    return _write_record(layout, record, start)


def _finished(layout: RunLayout) -> dict[str, Any]:
    """Record fields of a run that ended: its metrics and the checksums that keep it trusted."""
    provenance = json.loads(layout.provenance.read_text())
    return {"status": DONE, "metrics": json.loads(layout.metrics.read_text()), "provenance": provenance,
            "metrics_sha256": _sha(layout.metrics), "checkpoint_sha256": provenance["checkpoint_sha256"],
            "teacher_checkpoint_sha256": provenance["teacher_checkpoint_sha256"]}


def _failed(err: BaseException) -> dict[str, Any]:
    root = innermost(err)
    return {"status": FAILED, "error": f"{type(root).__name__}: {root}".strip(),
            "traceback": traceback.format_exc(limit=20)}


def _stopped(signum: int) -> dict[str, Any]:
    return {"status": INTERRUPTED, "error": f"stopped by {interrupts.signal_name(signum)}"}


def _write_record(layout: RunLayout, record: dict[str, Any], start: float) -> dict[str, Any]:
    record["seconds"] = round(time.perf_counter() - start, 3)
    atomic_write_json(layout.record, record)
    return record


def run_in_worker(study: Study, run: PlannedRun, study_dir: Path) -> dict[str, Any]:
    """execute_run in a worker process, under kd-ls's stop handling for good: a worker that a
    signal killed while idle would break its whole pool, and the runs in flight with it."""
    interrupts.install()
    return execute_run(study, run, study_dir)


class SubmititRun:
    """One run as a submitit job, checkpointable in submitit's protocol.

    On preemption or timeout submitit signals the job (SIGUSR2), calls `checkpoint`, requeues
    the job and exits it; the requeued job resumes the run from its resumable checkpoint.
    submitit owns the job's signals, so the run executes without kd-ls's handler (SIGTERM, as
    sent by scancel, then stops it through Lightning's own handler: recorded as interrupted)."""

    def __call__(self, study: Study, run: PlannedRun, study_dir: Path) -> dict[str, Any]:
        """Execute the run, unless a requeue came after it had finished."""
        if is_finished(study_dir, run.run_id):
            return read_record(study_dir, run.run_id)
        return execute_run(study, run, study_dir, own_signals=False)

    def checkpoint(self, study: Study, run: PlannedRun, study_dir: Path) -> Any:
        """submitit's hook, in the job's signal handler: the run's state is on disk already
        (saved every epoch), so mark the run as stopping and requeue the same call."""
        from submitit.helpers import DelayedSubmission

        interrupts.request(signal.SIGUSR2)
        return DelayedSubmission(self, study, run, study_dir)


def _record_failure(study_dir: Path, run: PlannedRun, error: str, status: str = FAILED) -> dict[str, Any]:
    """Write and return a failed (or interrupted) record for a run that could not run, or whose worker died."""
    record = {**run_identity(run), "status": status, "error": error, "seconds": 0.0}
    atomic_write_json(StudyLayout.of(study_dir).run(run.run_id).record, record)
    return record


def _gpu_count() -> int:
    """GPUs torch sees (none without a GPU driver: then torch is not imported at all)."""
    return devices.gpu_count()


ProgressFn = Callable[[str, PlannedRun, Optional[dict[str, Any]]], None]


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes (spawned: CUDA-safe), each on one GPU when GPUs are present (devices.py)."""
    ctx = multiprocessing.get_context("spawn")
    queue = devices.device_queue(ctx, jobs, _gpu_count())
    return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=devices.init_worker, initargs=(queue,))


def submitit_executor(study: Study, study_dir: Path) -> Any:
    """A submitit executor for `cluster.executor` slurm or submitit-local (pip install kd-ls[slurm])."""
    try:
        import submitit
    except ImportError:
        raise StudyError("study.cluster.executor: needs submitit; pip install 'kd-ls[slurm]'") from None
    c = study.cluster
    kind = "slurm" if c.executor == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=c.folder or str(StudyLayout.of(study_dir).submitit), cluster=kind)
    params: dict[str, Any] = {"timeout_min": c.timeout_min, "cpus_per_task": c.cpus_per_task,
                              "gpus_per_node": c.gpus_per_node, "mem_gb": c.mem_gb, "name": f"kd-ls-{study.name}"}
    if kind == "slurm":
        params.update(slurm_partition=c.partition, slurm_additional_parameters=c.slurm_additional_parameters)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def default_jobs(study: Study) -> int:
    """Runs at once by default: `cluster.runs_per_gpu` per GPU when GPUs are present, else the
    machine's cores divided by the study's threads per run."""
    cpu_jobs = max(1, (os.cpu_count() or 1) // study.threads)
    return devices.default_jobs(_gpu_count(), study.cluster.runs_per_gpu, cpu_jobs)


def execute_study(
    study: Study, study_dir: Path, jobs: int = 1, on_event: Optional[ProgressFn] = None, executor: Any = None,
    pool: Optional[ProcessPoolExecutor] = None,
) -> list[PlannedRun]:
    """Run every unfinished run of the study; teachers before their students.

    Runs execute in this process (jobs=1), in `jobs` worker processes (`pool`, when the caller
    keeps one across calls, else a pool of this call), or through
    `executor` (anything with `submit(fn, *args)` returning an object with done()/result(),
    e.g. a submitit executor). `on_event(kind, run, record)` gets 'skip', 'redo', 'start',
    'end'. Returns the planned runs, each finished or failed with its run.json.

    On a stop request (SIGINT / SIGTERM) no further run starts: worker processes get the
    signal too (it may have reached this process alone), cluster jobs are cancelled, the runs
    in flight record themselves as interrupted, and `Interrupted` is raised.
    """
    runs = plan_study(study)
    notify = on_event or (lambda kind, run, record: None)
    pending: list[PlannedRun] = []
    for run in runs:
        reason = stale_reason(study_dir, run.run_id)
        if reason is None:
            notify("skip", run, read_record(study_dir, run.run_id))
            continue
        if reason != NOT_RUN:
            notify("redo", run, {"reason": reason})
        pending.append(run)
    running: dict[str, tuple[PlannedRun, Any]] = {}

    def ready(run: PlannedRun) -> Optional[bool]:
        """True: can start; False: its teacher failed; None: its teacher is still to come."""
        if run.teacher_id is None:
            return True
        if run.teacher_id in running or any(p.run_id == run.teacher_id for p in pending):
            return None
        return is_finished(study_dir, run.teacher_id)

    own_pool = pool is None and executor is None and jobs > 1
    pool = process_pool(jobs) if own_pool else pool
    submit = (executor or pool).submit if (executor or pool) else None
    task = SubmititRun() if executor is not None else run_in_worker
    capacity = study.cluster.max_parallel if executor else jobs
    # The loop polls for a stop request where stopping is safe, rather than being interrupted
    # anywhere; a run executing in this process is interrupted at once (execute_run).
    stopping = False
    with interrupts.polling():
        try:
            while pending or running:
                if not stopping and interrupts.requested() is not None:
                    stopping = True
                    pending.clear()
                    _stop_jobs(pool, running)
                for run in list(pending):
                    if len(running) >= capacity or interrupts.requested() is not None:
                        break
                    state = ready(run)
                    if state is None:
                        continue
                    pending.remove(run)
                    if state is False:
                        notify("end", run, _record_failure(study_dir, run, f"teacher {run.teacher_id} failed"))
                        continue
                    notify("start", run, None)
                    if submit is None:
                        notify("end", run, execute_run(study, run, study_dir))
                    else:
                        running[run.run_id] = (run, submit(task, study, run, study_dir))
                for run_id, (run, job) in list(running.items()):
                    if job.done():
                        del running[run_id]
                        notify("end", run, _job_record(job, study_dir, run))
                if stopping and executor is not None:
                    break  # cancelled cluster jobs record themselves; no need to wait for them here
                if running:
                    time.sleep(0.1)
        finally:
            if own_pool:
                pool.shutdown(cancel_futures=True)
    if interrupts.requested() is not None:
        raise interrupts.Interrupted(interrupts.requested())
    return runs


def _stop_jobs(pool: Optional[ProcessPoolExecutor], running: dict[str, tuple[PlannedRun, Any]]) -> None:
    """Pass a stop request on to the runs in flight: the signal to the worker processes (kd-ls's
    handler there counts it once if the whole process group got it already), a cancel to
    cluster jobs (SLURM sends them SIGTERM)."""
    if pool is not None:
        for child in multiprocessing.active_children():
            os.kill(child.pid, interrupts.requested())
        return
    for _, job in running.values():
        cancel = getattr(job, "cancel", None)
        if cancel is not None:
            cancel(check=False)


def _job_record(job: Any, study_dir: Path, run: PlannedRun) -> dict[str, Any]:
    """A finished job's record. A job that ended without returning one left its record on disk
    if its run was stopped (a cluster job stopped by SIGTERM); else its worker died (killed,
    out of memory): a failure, or an interruption when the study is stopping."""
    try:
        return job.result()
    except Exception as err:  # noqa: BLE001 - the worker itself died: record it, go on
        written = read_record(study_dir, run.run_id)
        if written is not None and written.get("status") == INTERRUPTED:
            return written
        status = FAILED if interrupts.requested() is None else INTERRUPTED
        return _record_failure(study_dir, run, f"worker died: {type(err).__name__}: {err}", status)
