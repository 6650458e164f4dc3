"""The README's Performance table is the one experiments/bench/readme_table.py makes from the
committed benchmark JSON (no benchmark runs here)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "experiments" / "bench" / "readme_table.py"


def load_script():
    spec = importlib.util.spec_from_file_location("readme_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_the_one_the_json_gives():
    rt = load_script()
    readme = (ROOT / "README.md").read_text()
    assert rt.START in readme and rt.END in readme
    assert rt.with_table(readme, rt.table()) == readme, "stale: run python experiments/bench/readme_table.py"


def test_every_committed_result_has_a_row():
    rt = load_script()
    rendered = rt.table()
    for name, _ in rt.ROWS:
        path = rt.RESULTS / name
        if path.is_file():
            assert f"`{json.loads(path.read_text())['command']}`" in rendered


def test_a_changed_figure_is_caught(tmp_path):
    rt = load_script()
    if not any((rt.RESULTS / name).is_file() for name, _ in rt.ROWS):
        pytest.skip("no committed benchmark JSON")
    results = tmp_path / "results"
    shutil.copytree(rt.RESULTS, results)
    name = next(n for n, _ in rt.ROWS if (results / n).is_file())
    d = json.loads((results / name).read_text())
    d["machine"]["load_before"][0] += 1.0  # any figure the table shows
    (results / name).write_text(json.dumps(d))
    readme = (ROOT / "README.md").read_text()
    assert rt.with_table(readme, rt.table(results)) != readme
