"""A progress display for a whole study: runs done / total, the run in flight, time left."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kd_ls.study.plan import PlannedRun


class StudyProgress:
    """Rich progress bar fed by the runner's events; failures are printed as they happen."""

    def __init__(self, total: int, console: Optional[Console] = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]study"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.description}"),
            console=self.console, disable=not enabled,
        )
        self.task = self.progress.add_task("", total=total)
        self.running: list[str] = []
        self.failed = 0

    def __enter__(self) -> "StudyProgress":
        self.progress.start()
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.progress.stop()

    def note(self, text: str) -> None:
        """A one-off message above the bar (e.g. run folders the plan does not use)."""
        self.console.print(f"[yellow]note[/yellow] {text}")

    def event(self, kind: str, run: PlannedRun, record: Optional[dict[str, Any]]) -> None:
        """Runner callback: 'skip' (already finished), 'redo' (stale files), 'start' or 'end'."""
        if kind == "redo":
            self.console.print(f"[yellow]redoing[/yellow] {run.label()} ({run.run_id}): {record['reason']}")
            return
        if kind == "start":
            self.running.append(run.label())
        else:
            if run.label() in self.running:
                self.running.remove(run.label())
            if record and record.get("status") != "done":
                self.failed += 1
                self.console.print(f"[red]failed[/red] {run.label()} ({run.run_id}): {record.get('error')}")
            self.progress.advance(self.task)
        now = ", ".join(self.running)
        self.progress.update(self.task, description=f"[dim]{now}" if now else "")
