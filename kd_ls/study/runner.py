"""Run a study's graph: skip what is finished, redo what a crash left half-done, record
failures and carry on, optionally several runs at once in worker processes.

A run counts as finished only when its `run.json` record says so; that file is written
atomically after everything else, so a study killed at any moment loses at most the runs
that were in flight, and those are redone from scratch on the next start.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from kd_ls.io import atomic_write_json, sha256_file
from kd_ls.layout import StudyLayout
from kd_ls.study.plan import PlannedRun, plan_study
from kd_ls.study.spec import Study, StudyError

DONE, FAILED = "done", "failed"


def read_record(study_dir: Path, run_id: str) -> Optional[dict[str, Any]]:
    """A run's record, or None when the run never finished (or its record is unreadable)."""
    try:
        return json.loads(StudyLayout.of(study_dir).run(run_id).record.read_text())
    except (OSError, ValueError):
        return None


def _sha(path: Path) -> Optional[str]:
    return sha256_file(path) if path.is_file() else None


def stale_reason(study_dir: Path, run_id: str) -> Optional[str]:
    """Why a run must be (re)done, or None when it finished and its files are intact.

    The record holds the SHA-256 of the run's checkpoint and metrics.json, and for students
    of their teacher's checkpoint: a truncated or edited file, or a teacher retrained since,
    means the run is redone rather than silently reused."""
    record = read_record(study_dir, run_id)
    if record is None:
        return "not run yet"
    if record.get("status") != DONE:
        return f"failed before ({record.get('error')})"
    layout = StudyLayout.of(study_dir)
    run = layout.run(run_id)
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
    if run.teacher_id is not None:
        config["model"]["init_args"]["teacher_ckpt"] = str(layout.run(run.teacher_id).last_checkpoint)
    if study.logger == "wandb":
        from kd_ls.study.tracking import study_wandb_logger

        config["trainer"]["logger"] = study_wandb_logger(study, run, folder)
    return config


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
            "teacher_alpha": run.teacher_alpha, "temperature": run.temperature, "teacher_id": run.teacher_id}


def execute_run(study: Study, run: PlannedRun, study_dir: Path) -> dict[str, Any]:
    """Train one run in this process; write and return its record (done or failed).

    torch's CPU threads are pinned to `study.threads`: float32 reductions depend on the thread
    count, so it is a setting of the study (and part of run ids), never derived from how many
    runs execute at once."""
    import torch

    from kd_ls.lightning.harness import KDLightningCLI

    torch.set_num_threads(study.threads)
    quiet_lightning()
    layout = StudyLayout.of(study_dir).run(run.run_id)
    folder = layout.root
    if folder.exists():  # leftovers of an attempt that never finished
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    layout.study_config.write_text(yaml.safe_dump(cli_config(study, run, study_dir), sort_keys=False))
    record = run_identity(run)
    start = time.perf_counter()
    try:
        KDLightningCLI(args=["fit", "--config", str(layout.study_config)])
        record["metrics"] = json.loads(layout.metrics.read_text())
        provenance = json.loads(layout.provenance.read_text())
        record.update(status=DONE, provenance=provenance, metrics_sha256=_sha(layout.metrics),
                      checkpoint_sha256=provenance["checkpoint_sha256"],
                      teacher_checkpoint_sha256=provenance["teacher_checkpoint_sha256"])
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a failed run is recorded, the study goes on
        root = innermost(err)
        record.update(status=FAILED, error=f"{type(root).__name__}: {root}".strip(),
                      traceback=traceback.format_exc(limit=20))
    record["seconds"] = round(time.perf_counter() - start, 3)
    atomic_write_json(layout.record, record)
    return record


def _record_failure(study_dir: Path, run: PlannedRun, error: str) -> dict[str, Any]:
    """Write and return a failed record for a run that could not run (or whose worker died)."""
    record = {**run_identity(run), "status": FAILED, "error": error, "seconds": 0.0}
    atomic_write_json(StudyLayout.of(study_dir).run(run.run_id).record, record)
    return record


def _worker_init(gpu_queue: Any) -> None:
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA means CPU workers
        return 0


ProgressFn = Callable[[str, PlannedRun, Optional[dict[str, Any]]], None]


def _process_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes (spawned: CUDA-safe), one GPU each when GPUs are present."""
    ctx = multiprocessing.get_context("spawn")
    gpus = _gpu_count()
    gpu_queue = None
    if gpus:
        gpu_queue = ctx.Manager().Queue()
        for i in range(jobs):
            gpu_queue.put(i % gpus)
    return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(gpu_queue,))


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
    """Runs at once by default: one per GPU when GPUs are present, else the machine's cores
    divided by the study's threads per run."""
    return _gpu_count() or max(1, (os.cpu_count() or 1) // study.threads)


def execute_study(
    study: Study, study_dir: Path, jobs: int = 1, on_event: Optional[ProgressFn] = None, executor: Any = None
) -> list[PlannedRun]:
    """Run every unfinished run of the study; teachers before their students.

    Runs execute in this process (jobs=1), in `jobs` worker processes, or through
    `executor` (anything with `submit(fn, *args)` returning an object with done()/result(),
    e.g. a submitit executor). `on_event(kind, run, record)` gets 'skip', 'redo', 'start',
    'end'. Returns the planned runs, each finished or failed with its run.json.
    """
    runs = plan_study(study)
    notify = on_event or (lambda kind, run, record: None)
    pending: list[PlannedRun] = []
    for run in runs:
        reason = stale_reason(study_dir, run.run_id)
        if reason is None:
            notify("skip", run, read_record(study_dir, run.run_id))
            continue
        if reason != "not run yet":
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

    pool = _process_pool(jobs) if executor is None and jobs > 1 else None
    submit = (executor or pool).submit if (executor or pool) else None
    capacity = study.cluster.max_parallel if executor else jobs
    try:
        while pending or running:
            for run in list(pending):
                if len(running) >= capacity:
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
                    running[run.run_id] = (run, submit(execute_run, study, run, study_dir))
            for run_id, (run, job) in list(running.items()):
                if job.done():
                    del running[run_id]
                    notify("end", run, _job_record(job, study_dir, run))
            if running:
                time.sleep(0.1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return runs


def _job_record(job: Any, study_dir: Path, run: PlannedRun) -> dict[str, Any]:
    """A finished job's record; a worker that died without one (killed, out of memory) is a failure."""
    try:
        return job.result()
    except Exception as err:  # noqa: BLE001 - the worker itself died: record it, go on
        return _record_failure(study_dir, run, f"worker died: {type(err).__name__}: {err}")
