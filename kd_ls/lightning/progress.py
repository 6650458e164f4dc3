"""What a `kd-ls fit` prints while it trains: a model summary and progress in epochs and
optimizer steps.

Lightning's own bars count `training_step` calls, and with grouped steps (model.steps_per_call
= 64) one call is a whole epoch: its bar reads `1/1 0.00it/s`. This bar counts optimizer steps
(trainer.global_step) against the steps of the whole fit, shows the epoch, the latest metrics
and the time left (from the steps done so far). On a terminal it is a live Rich bar; piped to a
file (nohup, SLURM) it prints one plain line per epoch, flushed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelSummary, ProgressBar
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column

from kd_ls.clock import clock
from kd_ls.lightning.grouped_steps import total_optimizer_steps

SHOWN_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")


def metrics_text(trainer: pl.Trainer) -> str:
    """The latest shown metrics, e.g. 'train/loss 0.512  val/acc 0.913'."""
    values = trainer.callback_metrics
    return "  ".join(f"{k} {float(values[k]):.3f}" for k in SHOWN_METRICS if k in values)


def result_line(metrics: dict[str, float], split: str, where: str) -> str:
    """The one line a fit / validate / test ends with: the split's accuracy, NLL and ECE, and
    where every metric is, e.g. 'test: acc 97.42%  nll 0.091  ece 1.3%  (runs/x/metrics.json)'."""
    shown = {"acc": lambda v: f"acc {100 * v:.2f}%", "nll": lambda v: f"nll {v:.3f}", "ece": lambda v: f"ece {100 * v:.1f}%"}
    values = [show(metrics[f"{split}/{name}"]) for name, show in shown.items() if f"{split}/{name}" in metrics]
    return f"{split}: {'  '.join(values)}  ({where})"


class StepProgressBar(ProgressBar):
    """Progress of a fit in epochs and optimizer steps (see the module docstring).

    Args:
        plain: print one line per epoch instead of a live bar; default: when stderr is not a terminal.
    """

    def __init__(self, plain: Optional[bool] = None) -> None:
        super().__init__()
        self.console = Console(stderr=True)
        self.plain = not self.console.is_terminal if plain is None else plain
        self.enabled = True
        self.total_steps = 0
        self.started, self.first_step = 0.0, 0  # when and at which step this fit (or resumed fit) began
        self.ended_epoch: Optional[int] = None  # an epoch that ended and is not shown yet
        self.bar: Optional[Progress] = None
        self.task: Optional[TaskID] = None

    def disable(self) -> None:
        """Show nothing (Lightning calls this on ranks other than 0)."""
        self.enabled = False

    def enable(self) -> None:
        """Show progress again."""
        self.enabled = True

    def fields(self, trainer: pl.Trainer, epoch: int) -> dict[str, str]:
        """What is shown: epoch, steps, time and the latest metrics, each as text."""
        steps = trainer.global_step
        elapsed = time.perf_counter() - self.started
        done_here = steps - self.first_step
        left = elapsed / done_here * (self.total_steps - steps) if done_here else None
        epochs = f"{epoch}/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else str(epoch)
        return {"epoch": f"epoch {epochs}", "steps": f"step {steps}/{self.total_steps}",
                "time": f"{clock(elapsed)} elapsed, {clock(left)} left", "metrics": metrics_text(trainer)}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Count the fit's optimizer steps; start the live bar on a terminal."""
        self.total_steps = total_optimizer_steps(trainer, getattr(pl_module, "steps_per_call", 1))
        self.started, self.first_step = time.perf_counter(), trainer.global_step
        if not self.enabled or self.plain:
            return
        # The metrics come last: a narrow terminal cuts them, never the counts.
        whole = Column(no_wrap=True)
        self.bar = Progress(TextColumn("[bold]{task.fields[epoch]}", table_column=whole), BarColumn(bar_width=20),
                            TextColumn("{task.fields[steps]}  {task.fields[time]}", table_column=whole),
                            TextColumn("[dim]{task.fields[metrics]}", table_column=Column(no_wrap=True, ratio=1)),
                            console=self.console, expand=True)
        self.task = self.bar.add_task("fit", total=self.total_steps, completed=trainer.global_step,
                                      **self.fields(trainer, trainer.current_epoch + 1))
        self.bar.start()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Advance the live bar to the optimizer steps taken so far."""
        if self.bar is not None:
            self.bar.update(self.task, completed=trainer.global_step,
                            **self.fields(trainer, trainer.current_epoch + 1))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Note the epoch that ended: its train metrics are logged by the module's own epoch-end
        hook, which Lightning runs after this one, so the epoch is shown from the next hook."""
        self.ended_epoch = trainer.current_epoch + 1

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Show the epoch that ended before this one."""
        self.show_ended_epoch(trainer)

    def show_ended_epoch(self, trainer: pl.Trainer) -> None:
        """The ended epoch's line (plain) or the bar with its metrics (live)."""
        if not self.enabled or self.ended_epoch is None:
            return
        fields, self.ended_epoch = self.fields(trainer, self.ended_epoch), None
        if self.bar is not None:
            self.bar.update(self.task, completed=trainer.global_step, **fields)
        else:
            print("kd-ls fit: " + "  ".join(text for text in fields.values() if text), file=sys.stderr, flush=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Show the last epoch; leave the finished bar on screen."""
        self.show_ended_epoch(trainer)
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Stop the live bar, so the error shows below it."""
        self.on_train_end(trainer, pl_module)


class RunSummary(ModelSummary):
    """Lightning's model summary without its FLOPs column and total: Lightning counts FLOPs
    only from a module's `example_input_array`, which kd-ls modules have no use for, so it
    always printed `0`."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int = 0,
                  **summarize_kwargs: Any) -> None:
        """Print the layer table and one line of totals."""
        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        widths = [max([len(name), *map(len, values)]) for name, values in columns]
        rows = [[name for name, _ in columns], *zip(*(values for _, values in columns))]
        lines = [" | ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "-" * max(map(len, lines)))
        frozen = total_parameters - trainable_parameters
        lines.append(f"{trainable_parameters:,} trainable and {frozen:,} frozen parameters ({model_size:.2f} MB); "
                     f"modules: {total_training_modes['train']} in train mode, {total_training_modes['eval']} in eval mode")
        print("\n".join(lines), flush=True)
