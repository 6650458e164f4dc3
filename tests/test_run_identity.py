"""A run's id is exactly what determines its numbers: extending a finished study trains only
the new runs, speed settings train nothing, and the worker count never changes a result."""

import csv
import json
import shutil
from pathlib import Path

from conftest import results, tiny
from kd_ls.layout import StudyLayout
from kd_ls.report.write import collect_rows
from kd_ls.study import run_study
from kd_ls.study.plan import plan_study
from kd_ls.study.spec import parse_study
from kd_ls.study.runner import execute_study
from kd_ls.study.session import write_manifest


def extend(reference: Path, tmp_path: Path, **changes) -> tuple[Path, list[str]]:
    """Copy the finished reference study, run it with `changes`; return the folder and the
    labels of the runs that were trained."""
    folder = tmp_path / "study"
    shutil.copytree(reference, folder, ignore=shutil.ignore_patterns(".lock"))
    study = tiny(folder, **changes)
    trained = []
    execute_study(study, folder, jobs=1, on_event=lambda kind, run, _: kind == "start" and trained.append(run.label()))
    return folder, trained


def test_a_new_temperature_trains_exactly_its_students(reference_study, tmp_path):
    folder, trained = extend(reference_study, tmp_path, temperatures=[1.0, 4.0, 2.0])
    # 2 seeds x 2 teacher alphas at the new T; no teacher, no baseline, no old student.
    assert sorted(trained) == sorted(f"student a={a} T=2 seed={s}" for s in (0, 1) for a in ("0", "0.2"))


def test_a_new_seed_trains_exactly_that_seeds_runs(reference_study, tmp_path):
    _, trained = extend(reference_study, tmp_path, seeds=[0, 1, 2])
    assert len(trained) == 8 and all(label.endswith("seed=2") for label in trained)  # 2 + 2 + 4 runs


def test_a_new_alpha_trains_exactly_its_teachers_and_students(reference_study, tmp_path):
    _, trained = extend(reference_study, tmp_path, alphas=[0.0, 0.2, 0.4])
    assert sorted(trained) == sorted([f"teacher a=0.4 seed={s}" for s in (0, 1)]
                                     + [f"student a=0.4 T={t} seed={s}" for s in (0, 1) for t in (1, 4)])


def test_speed_settings_train_nothing(reference_study, tmp_path):
    study = tiny(tmp_path)
    faster = tiny(tmp_path, teacher_cache=not bool(study.teacher_cache))
    faster.teacher.steps_per_call = faster.student.steps_per_call = 16
    assert [r.run_id for r in plan_study(study)] == [r.run_id for r in plan_study(faster)]
    _, trained = extend(reference_study, tmp_path, teacher_cache=False)
    assert trained == []


def test_threads_per_run_are_part_of_the_identity(tmp_path):
    assert [r.run_id for r in plan_study(tiny(tmp_path))] != [r.run_id for r in plan_study(tiny(tmp_path, threads=2))]


def test_results_do_not_depend_on_the_worker_count(reference_study, tmp_path):
    """The reference study ran with two worker processes; one process gives the same table."""
    run_study(tiny(tmp_path / "one"), jobs=1, progress=False)
    assert results(tmp_path / "one") == results(reference_study)


def test_smoothness_at_a_new_temperature_comes_from_the_stored_teacher(reference_study, tmp_path):
    folder, _ = extend(reference_study, tmp_path, temperatures=[1.0, 4.0, 2.0])
    run_study(tiny(folder, temperatures=[1.0, 4.0, 2.0]), progress=False)  # trains nothing, writes the report
    with open(StudyLayout.of(folder).results) as f:
        teachers = [row for row in csv.DictReader(f) if row["role"] == "teacher"]
    assert teachers and all(0 < float(row["test_smoothness_T2"]) <= 1 for row in teachers)


def test_results_say_whose_alpha_a_column_is(reference_study):
    with open(StudyLayout.of(reference_study).results) as f:
        rows = list(csv.DictReader(f))
    students = [r for r in rows if r["role"] == "student"]
    assert {r["teacher_alpha"] for r in students} == {"0.0", "0.2"}
    assert {r["alpha"] for r in students} == {"0.0"}  # distilled students do not smooth their own labels
    assert {r["teacher_alpha"] for r in rows if r["role"] != "student"} == {""}


def test_a_new_loss_trains_exactly_its_students_and_no_teacher(reference_study, tmp_path):
    """losses: [kd, lskd] on the finished kd study trains only the lskd students; adding dkd then
    trains only the dkd students; results.csv names each student's loss, teachers and baselines none."""
    folder, trained = extend(reference_study, tmp_path, losses=["kd", "lskd"])
    students = lambda loss: sorted(f"student a={a} T={t} {loss} seed={s}"  # noqa: E731
                                   for s in (0, 1) for a in ("0", "0.2") for t in (1, 4))
    assert sorted(trained) == students("lskd")
    study = tiny(folder, losses=["kd", "lskd", "dkd"], loss_options={"dkd": {"dkd_beta": 2.0}})
    trained = []
    execute_study(study, folder, jobs=1, on_event=lambda kind, run, _: kind == "start" and trained.append(run.label()))
    assert sorted(trained) == students("dkd")
    write_manifest(study, folder)
    rows = collect_rows(folder)  # the rows of results.csv
    assert sorted((r["loss"], r.get("model.dkd_beta")) for r in rows if r["role"] == "student") == sorted(
        [("kd", None)] * 8 + [("lskd", None)] * 8 + [("dkd", 2.0)] * 8)
    assert {r["loss"] for r in rows if r["role"] != "student"} == {None}


def test_the_kd_loss_stays_out_of_run_ids(tmp_path):
    """Studies from before the loss axis keep their run ids: every committed MNIST-1D study
    re-plans to the ids its study.json recorded, and kd students' configs name no loss."""
    for manifest_file in sorted(Path(__file__).resolve().parents[1].glob("experiments/*/mnist1d/study.json")):
        manifest = json.loads(manifest_file.read_text())
        planned = plan_study(parse_study(manifest["study"]))
        assert [r.run_id for r in planned] == [r["run_id"] for r in manifest["runs"]], manifest_file
    study = tiny(tmp_path)
    explicit = tiny(tmp_path, losses=["kd"], loss_options={})
    assert [r.run_id for r in plan_study(study)] == [r.run_id for r in plan_study(explicit)]
    assert all("loss" not in r.config["model"]["init_args"] for r in plan_study(study))
    # an option written out at its default names the same run as one left out
    with_loss = [r.run_id for r in plan_study(tiny(tmp_path, losses=["kd", "dkd"]))]
    spelled = tiny(tmp_path, losses=["kd", "dkd"], loss_options={"dkd": {"dkd_alpha": 1, "dkd_beta": 8.0}})
    assert [r.run_id for r in plan_study(spelled)] == with_loss
    assert with_loss != [r.run_id for r in plan_study(tiny(tmp_path, losses=["kd", "dkd"], loss_options={
        "dkd": {"dkd_beta": 2.0}}))]
