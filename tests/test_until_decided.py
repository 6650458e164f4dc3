"""Seeds added until decided, on a real tiny study: only the new seeds' runs train, every look and
declaration is recorded, and alpha spent by an earlier look is never spent again."""
from __future__ import annotations

import json
import shutil

from conftest import tiny

from kd_ls.study import run_study
from kd_ls.study.session import seed_rounds
from kd_ls.study.spec import UntilDecided


def records(study_dir):
    """run id -> run.json text of every finished run."""
    return {p.parent.name: p.read_text() for p in (study_dir / "runs").glob("*/run.json")}


def test_seed_rounds_follow_the_planned_schedule():
    study = tiny("unused", seeds=[4, 7], until_decided=UntilDecided(max_seeds=5, round=2))
    assert seed_rounds(study) == [[4, 7], [4, 7, 8, 9], [4, 7, 8, 9, 10]]
    assert seed_rounds(tiny("unused")) == [[0, 1]]


def test_until_decided_trains_only_the_new_seeds_and_records_every_look(reference_study, tmp_path):
    folder = tmp_path / "grown"
    shutil.copytree(reference_study, folder)
    before = records(folder)
    verdict = run_study(tiny(folder, until_decided=UntilDecided(max_seeds=3, round=1)), jobs=2, progress=False)
    after = records(folder)
    assert {k: v for k, v in after.items() if k in before} == before  # finished runs untouched
    new = [json.loads(after[k]) for k in after.keys() - before.keys()]
    assert {r["seed"] for r in new} == {2} and len(new) == 8  # 2 teachers, 2 baselines, 4 students
    design = verdict["design"]
    first, second = design["declarations"]
    assert first["design"]["schedule"] == [2] and second["design"]["schedule"] == [2, 3]
    # the reference study's look at 2 seeds spent the whole 5%: the sequential plan came after it
    assert second["redeclared_after_look"] and second["alpha_budget"] == 0.0
    assert [look["n"] for look in design["looks"]] == [2, 2, 3]
    assert verdict["primary"]["word"] == "undecided" and "re-declared after 1 look" in verdict["headline"]
    # the same command again: nothing trains, no look is added
    again = run_study(tiny(folder, until_decided=UntilDecided(max_seeds=3, round=1)), jobs=2, progress=False)
    assert records(folder) == after and again["design"]["looks"] == design["looks"]
