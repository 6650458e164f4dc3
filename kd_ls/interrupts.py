"""Stopping on SIGINT and SIGTERM: the run in flight keeps its saved state and nothing new starts.

kd-ls's handler turns the first SIGINT or SIGTERM a process receives into a *stop request*.
Inside `raising()` (a run in flight) the request is raised at once as `Interrupted`; elsewhere
(a study's loop waiting on its workers) it is only recorded, and the loop polls `requested()`.
Later signals are ignored while the process stops, so a signal sent to a whole process group
and the same signal forwarded by a study to its workers count once.

Nothing is saved at the moment of the signal: every run saves a resumable checkpoint at the
end of its epochs (kd_ls/lightning/harness.py), so a stop loses at most the epoch in progress,
and the next `kd-ls fit` / `kd-ls study` resumes from it.

Exit codes follow the shell's convention, 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop request raised in the main thread.

    A BaseException, like KeyboardInterrupt, so that `except Exception` blocks (among them the
    one that records a study's failed runs) let it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The process's exit code for this stop: 128 + the signal number."""
        return 128 + self.signum


_state: dict[str, Any] = {"requested": None, "raising": False}


def signal_name(signum: int) -> str:
    """'SIGINT', 'SIGTERM', ... for a signal number."""
    return signal.Signals(signum).name


def requested() -> Optional[int]:
    """The signal that asked this process to stop, or None."""
    return _state["requested"]


def request(signum: int) -> None:
    """Record a stop request (the first one wins), as a signal would; submitit's preemption
    callback uses it, since submitit's own handler receives that signal."""
    if _state["requested"] is None:
        _state["requested"] = signum


def _handle(signum: int, frame: Any) -> None:
    first = requested() is None
    request(signum)
    if first and _state["raising"]:
        raise Interrupted(signum)


def _installed() -> bool:
    return signal.getsignal(signal.SIGINT) is _handle


def install() -> None:
    """Install kd-ls's handler for good (a study's worker process: it must outlive every run,
    since a worker that dies while idle would break its whole pool)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)


@contextmanager
def handling() -> Iterator[None]:
    """kd-ls's handler for SIGINT and SIGTERM within the block, the previous ones after it.

    Nested blocks and threads other than the main one (where Python delivers signals) leave
    the handlers as they are. Leaving the outermost block forgets the stop request: by then it
    has been acted upon."""
    if _installed() or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state["requested"] = None


@contextmanager
def _mode(raise_at_once: bool) -> Iterator[None]:
    outer = _state["raising"]
    _state["raising"] = raise_at_once
    try:
        yield
    finally:
        _state["raising"] = outer


@contextmanager
def raising() -> Iterator[None]:
    """Within the block a stop request raises `Interrupted` at once (on entry if one came before)."""
    if requested() is not None:
        raise Interrupted(requested())
    with _mode(True):
        yield


@contextmanager
def polling() -> Iterator[None]:
    """Within the block a stop request is only recorded: the block polls `requested()` where
    stopping is safe (a study's loop, between submitting runs and collecting their records)."""
    with _mode(False):
        yield


def signal_of(err: BaseException) -> Optional[int]:
    """The stop signal behind an exception that ended a run, or None for an ordinary error.

    Besides kd-ls's `Interrupted`: where kd-ls's handler is not installed (a submitit job,
    kd-ls used as a library), Lightning raises SIGTERMException on SIGTERM and turns
    KeyboardInterrupt into sys.exit(1); and a stop recorded with `request` ends in the
    SystemExit of submitit's requeue."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    if isinstance(err, Interrupted):
        return err.signum
    if isinstance(err, SIGTERMException):
        return signal.SIGTERM
    if isinstance(err, KeyboardInterrupt) or isinstance(err.__context__, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(err, SystemExit) and requested() is not None:
        return requested()
    return None
