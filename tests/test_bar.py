"""The live study line fits any terminal from 60 columns: one line, fields dropped in a fixed
order (never wrapped), the counts and the time left always readable; the step after training is
named. Rendered by rich at fixed widths, fed by a real study plan."""

import io
import re

import pytest
from rich.console import Console

from conftest import tiny
from kd_ls.layout import StudyLayout
from kd_ls.records import DONE
from kd_ls.study.plan import plan_study
from kd_ls.study.progress import StudyProgress, fit_line, stage


def terminal(width: int) -> Console:
    """A console that is a terminal of `width` columns, writing into memory."""
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def shown(console: Console, renderable) -> list[str]:
    console.print(renderable)
    return console.file.getvalue().splitlines()


@pytest.fixture
def busy(tmp_path):
    """A tiny study's display with two runs finished and two in flight."""
    runs = plan_study(tiny(tmp_path))
    display = StudyProgress(runs, tmp_path, parallel=2, console=terminal(80))
    for run in runs[:2]:
        display.event("start", run, None)
        display.event("end", run, {"status": DONE})
    display.event("start", runs[2], None)
    display.event("start", runs[3], None)
    return display, runs


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_study_line_fits_the_terminal(busy, width):
    display, runs = busy
    console = terminal(width)
    lines = shown(console, display.line(width))
    assert len(lines) == 1 and len(lines[0]) <= width, lines
    assert f"2/{len(runs)} runs" in lines[0]
    assert re.search(r"left (\?|~?\d+:\d\d:\d\d)", lines[0]), lines  # the time left is never cut
    if width >= 80:
        assert "━" in lines[0]  # room for the bar
    if width >= 120:
        assert runs[2].label() in lines[0]  # and for the runs in flight


def test_fields_are_dropped_in_order_not_wrapped():
    fields = {"label": "study", "bar": "", "counts": "12/51 runs", "failed": "1 failed", "elapsed": "0:02:11",
              "left": "left ~0:05:00 (rough)", "running": "teacher a=0.1 seed 0, student a=0 T=4 seed 1"}
    widths = {width: fit_line(fields, 0.25, width).plain for width in range(30, 140)}
    assert all(len(text) <= width and "\n" not in text for width, text in widths.items())
    assert all("12/51 runs" in text and "left ~0:05:00 (rough)" in text and "1 failed" in text
               for width, text in widths.items() if width >= 45)
    # the runs in flight go first, then the elapsed time, then the bar, then the label
    last_with = {field: max((w for w, text in widths.items() if marker in text), default=None) for field, marker
                 in (("running", "teacher a"), ("elapsed", "0:02:11"), ("bar", "━"), ("label", "study"))}
    first_with = {field: min(w for w, text in widths.items() if marker in text) for field, marker
                  in (("running", "teacher a"), ("elapsed", "0:02:11"), ("bar", "━"), ("label", "study"))}
    assert first_with["label"] <= first_with["bar"] <= first_with["elapsed"] <= first_with["running"]
    assert all(last_with[field] == 139 for field in last_with)


def test_the_step_after_training_is_named(tmp_path):
    plain = Console(file=io.StringIO(), width=80, force_terminal=False)
    with stage("writing verdict, report, plots", tmp_path, console=plain):
        pass
    lines = [line[11:] for line in plain.file.getvalue().splitlines()]
    assert lines[0] == "writing verdict, report, plots ..." and re.fullmatch(
        r"writing verdict, report, plots: done in \d+ s", lines[1]), lines
    live = terminal(80)
    with stage("writing verdict, report, plots", tmp_path, console=live):
        pass
    assert "writing verdict, report, plots: done in" in live.file.getvalue()
    assert StudyLayout.of(tmp_path).log.read_text().count("writing verdict, report, plots: done in") == 2
