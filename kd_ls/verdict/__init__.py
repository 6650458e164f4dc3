"""Deciding: from a study's results rows to its verdict, as data.

`cells` (rows -> cells keyed by seed), `stats` (intervals and estimates over seeds), `family`
(secondary comparisons, decided together), `matched` (teacher accuracy held equal), `mechanism`
(teacher measures against student gains), `sentences` (the words), `build` (the verdict).
Pure statistics on plain rows: nothing here trains, plots or touches a study folder, so it can be
read, tested and replaced on its own.
"""

from kd_ls.verdict.build import build_verdict

__all__ = ["build_verdict"]
