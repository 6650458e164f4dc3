"""Deciding: from a study's results rows to its verdict, as data.

`cells` (rows -> cells keyed by seed), `stats` (intervals and estimates over seeds), `family`
(secondary comparisons, decided together), `matched` (teacher accuracy held equal), `mechanism`
(teacher measures against student gains), `sentences` (the words), `build` (the verdict).
Pure statistics on plain rows: nothing here trains, plots or touches a study folder, so it can be
read, tested and replaced on its own.
"""

from typing import Any

__all__ = ["build_verdict"]


def __getattr__(name: str) -> Any:
    """`build_verdict`, imported on first use: a study file's check needs only `sequential`'s
    names, not scipy (PEP 562)."""
    if name == "build_verdict":
        from kd_ls.verdict.build import build_verdict

        return build_verdict
    raise AttributeError(f"module 'kd_ls.verdict' has no attribute {name!r}")
