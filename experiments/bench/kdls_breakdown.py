"""Where one kd-ls study run's wall time goes: a run of each kind, executed as the study executes
it (``kd_ls.study.runner.execute_run``), with kd-ls's and Lightning's phase functions timed.

Each phase is a set of functions; a call's time goes to its phase minus the time of timed calls
nested in it (exclusive time), so the phases add up to the run's wall time. What no phase claims
(the CLI's config parsing, building the Trainer and modules, Lightning's own loop code) goes to
the phase of the innermost timed function around it: ``training_loop`` for ``Trainer.fit``,
``config_and_build`` for the rest of the run. Both wall and CPU time (this process's) are kept;
shares are of CPU time, which other processes disturb less than wall time (still some: on a
busy virtual machine every instruction slows). The timers wrap about a hundred calls per run (none
per training step), so they barely change what they measure. This is a benchmark helper.
"""

from __future__ import annotations

import functools
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class PhaseClock:
    """Exclusive wall time per phase of the timed functions (a stack of open calls)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # this process's CPU time: steadier under other load
        self.stack: list[list[Any]] = []  # [phase, start, cpu start, nested seconds, nested cpu seconds]

    def wrap(self, fn: Callable, phase: Callable[..., str] | str) -> Callable:
        """`fn` timed under `phase` (a name, or a function of fn's arguments giving one)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = phase(*args, **kwargs) if callable(phase) else phase
            self.stack.append([name, time.perf_counter(), time.process_time(), 0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                name, start, cpu_start, nested, nested_cpu = self.stack.pop()
                total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                self.seconds[name] = self.seconds.get(name, 0.0) + total - nested
                self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu - nested_cpu
                if self.stack:
                    self.stack[-1][3] += total
                    self.stack[-1][4] += cpu

        return timed


def _eval_phase(loop: Any, *args: Any, **kwargs: Any) -> str:
    """Validation inside fit is per-epoch validation; trainer.validate / test after fit are the end-of-run metrics."""
    return "per_epoch_validation" if loop.trainer.state.fn == "fit" else "end_of_run_metrics"


def _targets() -> list[tuple[Any, str, Callable[..., str] | str]]:
    """(owner, attribute, phase) of every timed function."""
    from pytorch_lightning import LightningModule, Trainer
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import SaveConfigCallback
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.loops.evaluation_loop import _EvaluationLoop

    import kd_ls.lightning.harness as harness
    import kd_ls.lightning.student as student
    import kd_ls.study.runner as runner
    from kd_ls.data import DATASETS, ArrayDataModule
    from kd_ls.lightning.module import ClassifierModule

    targets: list[tuple[Any, str, Callable[..., str] | str]] = [
        (runner, "execute_run", "config_and_build"),
        (Trainer, "fit", "training_loop"),
        (_EvaluationLoop, "run", _eval_phase),
        (harness.KDLightningCLI, "after_fit", "end_of_run_metrics"),
        (ArrayDataModule, "setup", "data_build"),
        (student, "load_network", "teacher_load_and_logit_cache"),
        (student, "teacher_logit_cache", "teacher_load_and_logit_cache"),
        (Trainer, "save_checkpoint", "checkpoints_and_resume_files"),
        (ModelCheckpoint, "on_train_epoch_end", "checkpoints_and_resume_files"),
        (ModelCheckpoint, "on_validation_end", "checkpoints_and_resume_files"),
        (harness.ResumeCheckpoint, "on_train_epoch_end", "checkpoints_and_resume_files"),
        (ClassifierModule, "on_train_epoch_end", "per_epoch_train_metrics"),
        (LightningModule, "log", "logging"),
        (CSVLogger, "log_metrics", "logging"),
        (CSVLogger, "save", "logging"),
        (CSVLogger, "log_hyperparams", "logging"),
        (SaveConfigCallback, "setup", "logging"),
        (harness, "run_provenance", "records_and_checksums"),
        (runner, "prepare_folder", "records_and_checksums"),
        (runner, "_finished", "records_and_checksums"),
        (runner, "_write_record", "records_and_checksums"),
    ]
    targets += [(cls, "load_arrays", "data_build") for cls in set(DATASETS.values())]
    return targets


@contextmanager
def timed_phases() -> Iterator[PhaseClock]:
    """Time kd-ls's run phases while the block runs; the functions are put back afterwards."""
    clock = PhaseClock()
    saved = []
    for owner, name, phase in _targets():
        saved.append((owner, name, owner.__dict__.get(name)))  # None: inherited, deleted afterwards
        setattr(owner, name, clock.wrap(getattr(owner, name), phase))
    try:
        yield clock
    finally:
        for owner, name, original in reversed(saved):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def breakdown(study: Any, study_dir: Any) -> dict[str, Any]:
    """Run the first teacher, baseline and student of `study` (the student distils from that
    teacher) in this process, each timed by phase; seconds and shares per kind of run."""
    import torch

    import kd_ls.study.runner as runner
    from kd_ls.study.plan import plan_study

    runs = plan_study(study)
    teacher = next(r for r in runs if r.role == "teacher")
    picked = [teacher, next((r for r in runs if r.role == "baseline"), None),
              next((r for r in runs if r.teacher_id == teacher.run_id), None)]
    runner.quiet_lightning()
    threads = torch.get_num_threads()
    out: dict[str, Any] = {}
    for run in (r for r in picked if r is not None):
        with timed_phases() as clock:
            start = time.perf_counter()
            record = runner.execute_run(study, run, study_dir)  # the timed one
            wall = time.perf_counter() - start
        if record.get("status") != "done":
            raise RuntimeError(f"breakdown: {run.label()} did not finish: {record.get('error')}")
        cpu = sum(clock.cpu_seconds.values())
        phases = dict(sorted(clock.cpu_seconds.items(), key=lambda kv: -kv[1]))
        out[run.role] = {"run_id": run.run_id, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                         "phases_wall_s": {k: round(clock.seconds[k], 3) for k in phases},
                         "phases_cpu_s": {k: round(v, 3) for k, v in phases.items()},
                         "phases_cpu_share": {k: round(v / cpu, 4) for k, v in phases.items()}}
    torch.set_num_threads(threads)
    return out
