"""A study's progress: runs done / total, failures, the runs in flight and the time left.

The time left comes from the runs' expected cost (study/cost.py), calibrated by the seconds of
every finished run, so it shows from the first finished run on (and at once when a study
resumes: the runs finished before count too); it reads `~0:05:00 (rough)` until every kind of
run still to do has CALIBRATED_AFTER finished runs of its own. On a terminal it is one live line
that fits the terminal's width (fields are dropped in a fixed order, never wrapped); without one
(piped to a file, nohup, SLURM) it is one plain line per started and per finished run, flushed.
The plain lines also go to the study folder's log (StudyLayout.log), always. After training,
`stage` names what the study does next ("writing verdict, report, plots ... 12 s").
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Iterator, Optional

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from kd_ls.layout import StudyLayout
from kd_ls.clock import clock
from kd_ls.records import DONE
from kd_ls.study.cost import CostModel, input_spec_from_runs
from kd_ls.study.plan import PlannedRun

# The live line's optional fields, in the order they are dropped when the terminal is too narrow;
# the counts, failures and time left always show.
DROP_ORDER = ("running", "elapsed", "bar", "label")
BAR_WIDTH = (10, 30)  # the bar's least and most columns
MIN_RUNNING = 12  # columns below which the runs in flight are dropped rather than cut to nothing


def fit_line(fields: dict[str, str], done: float, width: int) -> Text:
    """One line of at most `width` columns: the fields in order ('bar' drawn `done` of the way),
    dropping those of DROP_ORDER one by one until the rest fit (the runs in flight are cut short
    first). Empty fields are left out."""
    styles = {"label": "bold", "failed": "red", "left": "cyan", "running": "dim"}
    for dropped in range(len(DROP_ORDER) + 1):
        kept = [name for name, text in fields.items() if (text or name == "bar") and name not in DROP_ORDER[:dropped]]
        fixed = sum(len(fields[name]) for name in kept if name not in ("bar", "running")) + 2 * (len(kept) - 1)
        room = width - fixed
        running = "running" in kept
        bar = min(BAR_WIDTH[1], room - (MIN_RUNNING if running else 0)) if "bar" in kept else 0
        if ("bar" in kept and bar < BAR_WIDTH[0]) or (running and room - bar < MIN_RUNNING) or room < 0:
            continue
        line = Text(no_wrap=True, overflow="ellipsis")
        for i, name in enumerate(kept):
            line.append("  " if i else "")
            if name == "bar":
                filled = int(round(bar * min(max(done, 0.0), 1.0)))
                line.append("━" * filled, "green").append("━" * (bar - filled), "grey23")
            elif name == "running":
                text = fields[name]
                line.append(text if len(text) <= room - bar else text[:room - bar - 1] + "…", styles[name])
            else:
                line.append(fields[name], styles.get(name, ""))
        return line
    must = "  ".join(fields[name] for name in fields if name not in DROP_ORDER and fields[name])
    return Text(must[:width], no_wrap=True)


class _Line:
    """The live line, laid out for the console's width at every refresh (runs in flight age)."""

    def __init__(self, display: "StudyProgress") -> None:
        self.display = display

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The study's line, fitted to the width the console offers."""
        yield self.display.line(options.max_width)


class StudyProgress:
    """Progress of one `kd-ls study`, fed by the runner's events (see the module docstring).

    Args:
        runs: the study's planned runs.
        study_dir: the study folder (its log is appended to).
        parallel: how many runs execute at once (for the time left).
        enabled: show progress on the console (the log is written either way).
        console: where to show it (default: stderr); a terminal gets the live line.
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
        self.screen = Live(_Line(self), console=self.console, refresh_per_second=2, transient=False) if self.live else None

    def __enter__(self) -> "StudyProgress":
        self.log = open(StudyLayout.of(self.study_dir).log, "a", buffering=1)
        self.write(f"study {self.study_dir}: {len(self.runs)} runs planned, {self.parallel} at a time")
        if self.screen is not None:
            self.screen.start()
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.flush_skipped()
        if self.screen is not None:
            self.screen.stop()
        how = "stopped" if exc_type is not None else "ended"
        self.write(f"study {how} after {clock(time.monotonic() - self.began)}: {self.counts()}")
        if self.log is not None:
            self.log.close()

    # ---------------------------------------------------------------- numbers

    def counts(self) -> str:
        """'12/51 done, 1 failed, 2 running'."""
        done = sum(status == DONE for status in self.finished.values())
        return f"{done}/{len(self.runs)} done, {len(self.finished) - done} failed, {len(self.started)} running"

    def pending(self) -> list[PlannedRun]:
        """The runs neither finished nor in flight."""
        return [run for run in self.runs if run.run_id not in self.finished and run.run_id not in self.started]

    def seconds_left(self) -> Optional[float]:
        """Wall-clock seconds until every run not yet finished is, or None while unknown."""
        now = time.monotonic()
        running = {run_id: now - began for run_id, began in self.started.items()}
        return self.costs.seconds_left(self.pending(), running, self.parallel)

    def time_left(self) -> str:
        """'0:05:00', '~0:05:00 (rough)' while some kind of run to do is not calibrated yet, '?' while unknown."""
        seconds = self.seconds_left()
        if seconds is None or not self.costs.rough(self.pending(), self.started):
            return clock(seconds)
        return f"~{clock(seconds)} (rough)"

    def line(self, width: int) -> Text:
        """The live line for a terminal `width` columns wide."""
        failed = len(self.finished) - sum(status == DONE for status in self.finished.values())
        fields = {"label": "study", "bar": "", "counts": f"{len(self.finished)}/{len(self.runs)} runs",
                  "failed": f"{failed} failed" if failed else "", "elapsed": clock(time.monotonic() - self.began),
                  "left": f"left {self.time_left()}",
                  "running": ", ".join(r.label() for r in self.runs if r.run_id in self.started)}
        return fit_line(fields, len(self.finished) / max(1, len(self.runs)), width)

    # ---------------------------------------------------------------- output

    def write(self, text: str) -> None:
        """One plain line: to the log, and to the console when there is no live line."""
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        if self.log is not None:
            self.log.write(line + "\n")
        if self.enabled and not self.live:
            self.console.file.write(line + "\n")
            self.console.file.flush()

    def shout(self, word: str, text: str, style: str) -> None:
        """A line that matters (a failure, a redo, a note): above the live line, or a plain line."""
        if self.live:
            self.console.print(Text.assemble((word, style), " ", text))
        self.write(f"{word:<7} {text}")

    def note(self, text: str) -> None:
        """A one-off message (e.g. run folders the plan does not use)."""
        self.shout("note", text, "yellow")

    def flush_skipped(self) -> None:
        """One line for the runs found finished, instead of one per run."""
        if self.skipped:
            self.write(f"skip    {self.skipped} runs finished before (reused) | {self.counts()}, left {self.time_left()}")
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
        elif kind == "start":
            self.started[run.run_id] = time.monotonic()
            self.write(f"start   {label} | {self.counts()}, left {self.time_left()}")
        else:
            self.finish(run, record)
            if record and record.get("status") == DONE:
                self.write(f"done    {label} in {clock(self.costs.seconds.get(run.run_id))} | {self.counts()}, "
                           f"left {self.time_left()}")
            else:
                self.shout("failed", f"{label}: {(record or {}).get('error')} | {self.counts()}", "red")


class _Elapsed:
    """A step's live line: what it does and the seconds so far."""

    def __init__(self, what: str, began: float) -> None:
        self.what, self.began = what, began

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """'writing verdict, report, plots ... 12 s', cut to the console's width."""
        text = f"{self.what} ... {time.monotonic() - self.began:.0f} s"
        yield Text(text, style="dim", no_wrap=True, overflow="ellipsis")


@contextmanager
def stage(what: str, study_dir: Path, enabled: bool = True, console: Optional[Console] = None) -> Iterator[None]:
    """Name a step after training while it runs: 'writing verdict, report, plots ... 12 s' live on a
    terminal, a plain line when it starts and one when it is done otherwise (and in the study's log)."""
    console = console or Console(stderr=True)
    began, live = time.monotonic(), enabled and console.is_terminal

    def say(text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        with open(StudyLayout.of(study_dir).log, "a") as log:
            log.write(line + "\n")
        if live:
            console.print(Text(text, style="dim"))
        elif enabled:
            console.file.write(line + "\n")
            console.file.flush()

    if not live:
        say(f"{what} ...")
    screen = Live(_Elapsed(what, began), console=console, refresh_per_second=2, transient=True) if live else None
    if screen is not None:
        screen.start()
    try:
        yield
    finally:
        if screen is not None:
            screen.stop()
    say(f"{what}: done in {time.monotonic() - began:.0f} s")
