"""A study owns its folder: a copied study file aimed at it stops with one line and loses nothing,
the owning file grows it, --adopt hands it over, a folder without an owner is adopted with a note,
and `kd-ls study --new` writes a starter file with its own name and folder. Real tiny studies."""

import json
import shutil

import pytest
import yaml

from conftest import TINY_STUDY
from kd_ls.commands.main import main
from kd_ls.layout import StudyLayout
from kd_ls.study import StudyError, load_study
from kd_ls.study.ownership import DEFAULT_OWNER, claim_folder, recorded_owner
from kd_ls.study.spec import DEFAULT_STUDY


def snapshot(folder):
    """Every file of a study folder with its bytes (the lock file aside)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def study_file(path, output, **changes):
    """The tiny study, 5 runs (2 teachers, 2 students, the student alone), as a file writing to `output`."""
    raw = yaml.safe_load(TINY_STUDY.read_text())
    raw.update({"seeds": [0], "temperatures": [1.0], "baselines": {"alone": True, "ls_alpha": 0.0},
                "output": str(output), **changes})
    path.write_text(yaml.safe_dump(raw))
    return path


def run(capsys, *argv):
    """`kd-ls study ...` in this process: (exit code, stderr lines)."""
    try:
        main(["study", *argv, "--jobs", "1", "--no-progress"])
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def trained(folder):
    """Run id -> the bytes of its record: a run that trains again gets a new record."""
    return {p.parent.name: p.read_bytes() for p in StudyLayout.of(folder).runs.glob("*/run.json")}


def test_a_copied_study_stops_its_owner_grows_and_adopt_hands_over(tmp_path, capsys):
    out = tmp_path / "out"
    original = study_file(tmp_path / "original.yaml", out)
    assert run(capsys, "--config", str(original))[0] == 0
    assert recorded_owner(out) == str(original.resolve())
    first = trained(out)
    assert len(first) == 5

    copy = tmp_path / "copy.yaml"
    shutil.copy(original, copy)  # a copy keeps the original's output: it must not write there
    before = snapshot(out)
    code, err = run(capsys, "--config", str(copy))
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("kd-ls: error: study.output: ") and str(original.resolve()) in err[0]
    assert str(copy.resolve()) in err[0] and "`output:`" in err[0] and "--adopt" in err[0]
    assert snapshot(out) == before  # nothing written, nothing lost
    main(["study", "--config", str(copy), "--dry-run"])  # the dry run says so too
    assert f"Folder: belongs to the study file '{original.resolve()}'" in capsys.readouterr().out

    study_file(original, out, temperatures=[1.0, 4.0])  # the owner grows its study: only the new runs train
    assert run(capsys, "--config", str(original))[0] == 0
    grown = trained(out)
    assert len(grown) == 7 and {run_id: grown[run_id] for run_id in first} == first

    assert run(capsys, "--config", str(copy), "--adopt")[0] == 0  # taken over: trains the copy's missing runs
    assert recorded_owner(out) == str(copy.resolve())
    assert json.loads(StudyLayout.of(out).owner.read_text())["previous"] == [str(original.resolve())]
    assert "adopted (--adopt)" in StudyLayout.of(out).log.read_text()
    assert trained(out) == grown  # the copy's runs were all finished already
    assert run(capsys, "--config", str(original))[0] == 2  # and now the original is the other file

    StudyLayout.of(out).owner.unlink()  # a folder as an older kd-ls left it: the first study adopts it, saying so
    assert run(capsys, "--config", str(original))[0] == 0
    assert recorded_owner(out) == str(original.resolve()) and trained(out) == grown
    assert "recorded no study file (an older kd-ls): it now belongs to" in StudyLayout.of(out).log.read_text()


def test_a_study_moved_with_its_folder_still_owns_it(tmp_path):
    """A project cloned or moved elsewhere: the study file and its folder keep their places."""
    (tmp_path / "a" / "runs").mkdir(parents=True)
    assert claim_folder(tmp_path / "a" / "runs", tmp_path / "a" / "study.yaml") is None
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert claim_folder(tmp_path / "b" / "runs", tmp_path / "b" / "study.yaml") is None
    with pytest.raises(StudyError, match="belongs to"):
        claim_folder(tmp_path / "b" / "runs", tmp_path / "b" / "other.yaml")


def test_the_default_study_owns_its_folder_against_a_copy(tmp_path):
    """A copy of the shipped default study, run without renaming, is refused in the default's folder."""
    out = tmp_path / "mnist1d-default"
    out.mkdir()
    assert claim_folder(out, None) is None and recorded_owner(out) == DEFAULT_OWNER
    copy = tmp_path / "mine.yaml"
    copy.write_text(DEFAULT_STUDY.read_text())
    with pytest.raises(StudyError, match=r"belongs to the default study .*not the study file '.*mine\.yaml'.*--adopt"):
        claim_folder(out, copy)
    assert recorded_owner(out) == DEFAULT_OWNER
    assert claim_folder(out, None) is None  # the default study itself goes on


def test_new_writes_a_starter_study_with_its_own_name_and_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["study", "--new", "mine"])
    out = capsys.readouterr().out
    assert "kd-ls study --config mine.yaml" in out
    study = load_study(tmp_path / "mine.yaml")
    default = load_study(DEFAULT_STUDY)
    assert (study.name, study.output) == ("mine", "runs/study/mine")
    assert {**study.to_dict(), "name": default.name, "output": default.output} == default.to_dict()
    with pytest.raises(SystemExit) as stop:  # never overwrites
        main(["study", "--new", "mine"])
    assert stop.value.code == 2 and "exists already" in capsys.readouterr().err
    main(["study", "--new", str(tmp_path / "sub" / "other.yaml")])
    assert load_study(tmp_path / "sub" / "other.yaml").name == "other"
