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
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from kd_ls.io import atomic_write_json
from kd_ls.study.plan import TEACHER, PlannedRun, checkpoint_path, plan_study
from kd_ls.study.spec import Study

DONE, FAILED = "done", "failed"


def run_folder(study_dir: Path, run_id: str) -> Path:
    """The folder of one run inside a study folder."""
    return study_dir / "runs" / run_id


def read_record(study_dir: Path, run_id: str) -> Optional[dict[str, Any]]:
    """A run's record, or None when the run never finished (or its record is unreadable)."""
    try:
        return json.loads((run_folder(study_dir, run_id) / "run.json").read_text())
    except (OSError, ValueError):
        return None


def is_finished(study_dir: Path, run_id: str) -> bool:
    """True when the run completed and its record is intact."""
    record = read_record(study_dir, run_id)
    return record is not None and record.get("status") == DONE


def cli_config(study: Study, run: PlannedRun, study_dir: Path) -> dict[str, Any]:
    """The complete `kd-ls fit` config of a run: its planned config plus where things go."""
    folder = run_folder(study_dir, run.run_id)
    config = json.loads(json.dumps(run.config))
    config["trainer"].update({"default_root_dir": str(folder), "enable_progress_bar": False,
                              "enable_model_summary": False})
    if run.teacher_id is not None:
        config["model"]["init_args"]["teacher_ckpt"] = str(checkpoint_path(study_dir, run.teacher_id))
    if study.logger == "wandb":
        from kd_ls.tracking import study_wandb_logger

        config["trainer"]["logger"] = study_wandb_logger(study, run, folder)
    return config


def quiet_lightning() -> None:
    """Keep Lightning's per-run chatter out of the study's progress display."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")


def innermost(err: BaseException) -> BaseException:
    """The root cause of a chain of wrapped exceptions."""
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def execute_run(study: Study, run: PlannedRun, study_dir: Path) -> dict[str, Any]:
    """Train one run in this process; write and return its record (done or failed)."""
    from kd_ls.cli import KDLightningCLI

    quiet_lightning()
    folder = run_folder(study_dir, run.run_id)
    if folder.exists():  # leftovers of an attempt that never finished
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    config_file = folder / "study_run.yaml"
    config_file.write_text(yaml.safe_dump(cli_config(study, run, study_dir), sort_keys=False))
    record: dict[str, Any] = {"run_id": run.run_id, "role": run.role, "seed": run.seed, "alpha": run.alpha,
                              "temperature": run.temperature, "teacher_id": run.teacher_id}
    start = time.perf_counter()
    try:
        KDLightningCLI(args=["fit", "--config", str(config_file)])
        record["metrics"] = json.loads((folder / "metrics.json").read_text())
        record["status"] = DONE
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a failed run is recorded, the study goes on
        root = innermost(err)
        record.update(status=FAILED, error=f"{type(root).__name__}: {root}".strip(),
                      traceback=traceback.format_exc(limit=20))
    record["seconds"] = round(time.perf_counter() - start, 3)
    atomic_write_json(folder / "run.json", record)
    return record


def _dependency_failed(study_dir: Path, run: PlannedRun) -> dict[str, Any]:
    record = {"run_id": run.run_id, "role": run.role, "seed": run.seed, "alpha": run.alpha,
              "temperature": run.temperature, "teacher_id": run.teacher_id, "status": FAILED,
              "error": f"teacher {run.teacher_id} failed", "seconds": 0.0}
    atomic_write_json(run_folder(study_dir, run.run_id) / "run.json", record)
    return record


def _worker_init(threads: int, gpu_queue: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA means CPU workers
        return 0


ProgressFn = Callable[[str, PlannedRun, Optional[dict[str, Any]]], None]


def execute_study(
    study: Study, study_dir: Path, jobs: int = 1, on_event: Optional[ProgressFn] = None
) -> list[PlannedRun]:
    """Run every unfinished run of the study; teachers before their students.

    `on_event(kind, run, record)` is called with kind 'skip', 'start' or 'end'.
    Returns the planned runs (finished or failed, each with its run.json).
    """
    runs = plan_study(study)
    notify = on_event or (lambda kind, run, record: None)
    pending = []
    for run in runs:
        if is_finished(study_dir, run.run_id):
            notify("skip", run, read_record(study_dir, run.run_id))
        else:
            pending.append(run)

    running_ids: set[str] = set()

    def ready(run: PlannedRun) -> Optional[bool]:
        """True: can start; False: its teacher failed; None: its teacher is still to come."""
        if run.teacher_id is None:
            return True
        if run.teacher_id in running_ids or any(p.run_id == run.teacher_id for p in pending):
            return None
        return is_finished(study_dir, run.teacher_id)

    if jobs <= 1:
        while pending:
            run = pending.pop(0)
            if ready(run) is False:
                notify("end", run, _dependency_failed(study_dir, run))
                continue
            notify("start", run, None)
            notify("end", run, execute_run(study, run, study_dir))
        return runs

    gpus = _gpu_count()
    ctx = multiprocessing.get_context("spawn")
    gpu_queue = None
    if gpus:
        gpu_queue = ctx.Manager().Queue()
        for i in range(jobs):
            gpu_queue.put(i % gpus)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    futures: dict[Future, PlannedRun] = {}
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads, gpu_queue)) as pool:
        while pending or futures:
            for run in list(pending):
                if len(futures) >= jobs:
                    break
                state = ready(run)
                if state is None:
                    continue
                pending.remove(run)
                if state is False:
                    notify("end", run, _dependency_failed(study_dir, run))
                    continue
                running_ids.add(run.run_id)
                notify("start", run, None)
                futures[pool.submit(execute_run, study, run, study_dir)] = run
            if not futures:
                continue
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                run = futures.pop(future)
                running_ids.discard(run.run_id)
                notify("end", run, future.result())
    return runs
