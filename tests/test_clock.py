"""The time left of a study: known from the first finished run, marked rough while a kind of run
still to do has fewer than two finished runs of its own, and measured against the real end at
10% and 50% of a tiny real study. The errors are printed (pytest -s), never asserted: timings
do not go in pass/fail tests."""

import re
import time

from rich.console import Console

from conftest import tiny
from kd_ls.study.cost import CALIBRATED_AFTER
from kd_ls.study.plan import plan_study
from kd_ls.study.progress import StudyProgress
from kd_ls.study.runner import execute_study

DONE_LINE = re.compile(r"done .*\| (\d+)/(\d+) done.*, left (\?|~?(\d+):(\d\d):(\d\d)( \(rough\))?)$")


class Stamped:
    """A non-terminal file that keeps each line with the monotonic time it was written."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.lines += [(time.monotonic(), line) for line in text.splitlines() if line]
        return len(text)

    def flush(self) -> None:
        pass


def test_the_time_left_is_rough_early_and_measured_against_the_end(tmp_path):
    study = tiny(tmp_path, seeds=[0])  # 2 teachers, 4 students, 2 baselines: 3 kinds of run
    runs = plan_study(study)
    out = Stamped()
    with StudyProgress(runs, tmp_path, parallel=1, console=Console(file=out)) as display:
        execute_study(study, tmp_path, jobs=1, on_event=display.event)
    done = [(t, DONE_LINE.search(line)) for t, line in out.lines if line[11:].startswith("done")]
    assert len(done) == len(runs) and all(match for _, match in done), out.lines
    end = done[-1][0]
    estimates = []
    for t, match in done:
        finished, total = int(match.group(1)), int(match.group(2))
        left = None if match.group(3) == "?" else int(match.group(4)) * 3600 + int(match.group(5)) * 60 + int(match.group(6))
        estimates.append((finished / total, left, bool(match.group(7)), end - t))
    # known from the first finished run on, and rough then: the other kinds have no runs of their own yet
    assert all(left is not None for _, left, _, _ in estimates)
    assert estimates[0][2]
    # no longer rough once every kind left has CALIBRATED_AFTER finished runs; 0 left at the end
    assert not estimates[-1][2] and estimates[-1][1] == 0
    kinds = {display.costs.kinds[run.run_id] for run in runs}
    assert len(kinds) == 3 and CALIBRATED_AFTER == 2
    for fraction in (0.1, 0.5):
        share, left, rough, actual = next(e for e in estimates if e[0] >= fraction)
        print(f"\nclock at {share:.0%} ({fraction:.0%} asked): estimated {left} s{' (rough)' if rough else ''}, "
              f"actual {actual:.1f} s, error {left - actual:+.1f} s ({(left - actual) / actual:+.0%})")
