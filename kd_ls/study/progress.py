"""A study's progress: runs done / total, failures, the runs in flight and the time left.

The time left comes from the runs' expected cost (study/cost.py), refined by the seconds of
every finished run, so it shows from the first finished run on (and at once when a study
resumes: the runs finished before count too). On a terminal it is a live Rich bar; without one
(piped to a file, nohup, SLURM) it is one plain line per started and per finished run,
flushed. The plain lines also go to the study folder's log (StudyLayout.log), always.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from kd_ls.layout import StudyLayout
from kd_ls.records import DONE
from kd_ls.lightning.progress import clock
from kd_ls.study.cost import CostModel, input_spec_from_runs
from kd_ls.study.plan import PlannedRun



class _TimeLeft(ProgressColumn):
    """The study's estimate of the time left, recomputed at every refresh (runs in flight age)."""

    def __init__(self, display: "StudyProgress") -> None:
        super().__init__()
        self.display = display

    def render(self, task: Task) -> Text:
        """'left 0:01:23', or 'left ?' before any run has finished."""
        return Text(f"left {clock(self.display.seconds_left())}", style="progress.remaining")


class StudyProgress:
    """Progress of one `kd-ls study`, fed by the runner's events (see the module docstring).

    Args:
        runs: the study's planned runs.
        study_dir: the study folder (its log is appended to).
        parallel: how many runs execute at once (for the time left).
        enabled: show progress on the console (the log is written either way).
        console: where to show it (default: stderr); a terminal gets the live bar.
    """

    def __init__(self, runs: list[PlannedRun], study_dir: Path, parallel: int = 1, enabled: bool = True,
                 console: Optional[Console] = None) -> None:
        self.runs, self.study_dir, self.parallel, self.enabled = runs, Path(study_dir), parallel, enabled
        self.console = console or Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.costs = CostModel(runs)
        self.started: dict[str, float] = {}  # run id -> monotonic start time, of runs in flight
        self.finished: dict[str, str] = {}  # run id -> status, of runs done or failed (this or earlier invocations)
        self.skipped = 0
        self.began = time.monotonic()
        self.log: Optional[IO[str]] = None
        self.progress = Progress(
            TextColumn("[bold]study"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(), _TimeLeft(self),
            TextColumn("[dim]{task.description}"), console=self.console, disable=not self.live,
        )
        self.task = self.progress.add_task("", total=len(runs), failed="")

    def __enter__(self) -> "StudyProgress":
        self.log = open(StudyLayout.of(self.study_dir).log, "a", buffering=1)
        self.write(f"study {self.study_dir}: {len(self.runs)} runs planned, {self.parallel} at a time")
        self.progress.start()
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.flush_skipped()
        self.progress.stop()
        how = "stopped" if exc_type is not None else "ended"
        self.write(f"study {how} after {clock(time.monotonic() - self.began)}: {self.counts()}")
        if self.log is not None:
            self.log.close()

    # ---------------------------------------------------------------- numbers

    def counts(self) -> str:
        """'12/51 done, 1 failed, 2 running'."""
        done = sum(status == DONE for status in self.finished.values())
        failed = len(self.finished) - done
        return f"{done}/{len(self.runs)} done, {failed} failed, {len(self.started)} running"

    def seconds_left(self) -> Optional[float]:
        """Wall-clock seconds until every run not yet finished is, or None while unknown."""
        now = time.monotonic()
        pending = [run for run in self.runs if run.run_id not in self.finished and run.run_id not in self.started]
        running = {run_id: now - began for run_id, began in self.started.items()}
        return self.costs.seconds_left(pending, running, self.parallel)

    # ---------------------------------------------------------------- output

    def write(self, text: str) -> None:
        """One plain line: to the log, and to the console when there is no live bar."""
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        if self.log is not None:
            self.log.write(line + "\n")
        if self.enabled and not self.live:
            self.console.file.write(line + "\n")
            self.console.file.flush()

    def shout(self, word: str, text: str, style: str) -> None:
        """A line that matters (a failure, a redo, a note): above the live bar, or a plain line."""
        if self.live:
            self.console.print(Text.assemble((word, style), " ", text))
        self.write(f"{word:<7} {text}")

    def note(self, text: str) -> None:
        """A one-off message (e.g. run folders the plan does not use)."""
        self.shout("note", text, "yellow")

    def flush_skipped(self) -> None:
        """One line for the runs found finished, instead of one per run."""
        if self.skipped:
            self.write(f"skip    {self.skipped} runs finished before (reused) | {self.counts()}, "
                       f"left {clock(self.seconds_left())}")
            self.skipped = 0

    # ---------------------------------------------------------------- events

    def finish(self, run: PlannedRun, record: Optional[dict[str, Any]]) -> None:
        """Count a run that ended (or was found finished) and learn from its time: the wall-clock
        time from its start event (worker start-up and data loading included) for a run of this
        invocation, the time its record states for one finished before."""
        status = (record or {}).get("status", "failed")
        self.finished[run.run_id] = status
        began = self.started.pop(run.run_id, None)
        seconds = time.monotonic() - began if began is not None else (record or {}).get("seconds")
        if status == DONE and seconds:
            if self.costs.costs is None:
                self.learn_costs(run)
            self.costs.observe(run, float(seconds))
        failed = len(self.finished) - sum(s == DONE for s in self.finished.values())
        self.progress.update(self.task, completed=len(self.finished), failed=f"{failed} failed" if failed else "")

    def learn_costs(self, run: PlannedRun) -> None:
        """The runs' costs, from the data shape a finished run's checkpoint records."""
        try:
            spec = input_spec_from_runs(self.study_dir, [run])
            if spec is not None:
                self.costs.set_spec(spec)
        except Exception:  # noqa: BLE001 - a network the FLOP counter cannot trace: time by role alone
            self.costs.costs = None

    def event(self, kind: str, run: PlannedRun, record: Optional[dict[str, Any]]) -> None:
        """Runner callback: 'skip' (already finished), 'redo' (stale files), 'start' or 'end'."""
        label = f"{run.label()} ({run.run_id})"
        if kind == "skip":
            self.skipped += 1
            self.finish(run, record)
            return
        self.flush_skipped()
        if kind == "redo":
            self.shout("redo", f"{label}: {record['reason']}", "yellow")
            return
        if kind == "start":
            self.started[run.run_id] = time.monotonic()
            self.write(f"start   {label} | {self.counts()}, left {clock(self.seconds_left())}")
        else:
            self.finish(run, record)
            if record and record.get("status") == DONE:
                self.write(f"done    {label} in {clock(self.costs.seconds.get(run.run_id))} | {self.counts()}, "
                           f"left {clock(self.seconds_left())}")
            else:
                self.shout("failed", f"{label}: {(record or {}).get('error')} | {self.counts()}", "red")
        self.progress.update(self.task, description=", ".join(r.label() for r in self.runs if r.run_id in self.started))
