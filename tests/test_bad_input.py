"""Bad input, table-driven: each malformed study file or CLI call gives a one-line error that
names the field, exits non-zero, and leaves finished results untouched."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import STUDENT_CONFIG, TEACHER_CONFIG, TINY, TINY_STUDY
from kd_ls.commands.main import main

STUDY_CASES = [
    ({"alphas": [0.0, 1.2]}, "study.alphas[1]: must be in [0, 1), got 1.2"),
    ({"alphas": []}, "study.alphas: must list at least one value"),
    ({"seeds": []}, "study.seeds: must list at least one seed"),
    ({"seeds": [0, "one"]}, "study.seeds[1]: expected an integer, got 'one'"),
    ({"temperatures": [0]}, "study.temperatures[0]: must be > 0, got 0"),
    ({"beta": 2}, "study.beta: must be in [0, 1], got 2.0"),
    ({"colour": "red"}, "study.colour: unknown key; allowed: name, dataset, teacher"),
    ({"teacher": {"model": "resnet9000"}}, "study.teacher.model: model name 'resnet9000' is unknown"),
    ({"teacher": {"epochs": "ten"}}, "study.teacher.epochs: expected an integer, got 'ten'"),
    ({"student": {"optimizer": "lion"}}, "study.student.optimizer: must be one of sgd, adamw; got 'lion'"),
    ({"student": {"dropout": 0.5}}, "study.student.dropout: unknown key; allowed: model, model_kwargs, epochs"),
    ({"student": {"steps_per_call": 0}}, "study.student.steps_per_call: must be >= 1, got 0"),
    ({"dataset": {"name": "imagenet"}}, "study.dataset.name: 'imagenet' is unknown; choose one of: mnist1d"),
    ({"dataset": {"name": "image_folder", "options": {"path": "/no/such/cifar.tar.gz"}}},
     "study.dataset.options: data.path: '/no/such/cifar.tar.gz' does not exist"),
    ({"dataset": {"name": "mnist1d", "options": {"num_sample": 10}}}, "study.dataset.options: "),
    ({"convention": "smooth"}, "study.convention: must be one of uniform, others, adaptive, online; got 'smooth'"),
    ({"logger": "tensorboard"}, "study.logger: must be one of csv, wandb; got 'tensorboard'"),
    ({"cluster": {"executor": "kubernetes"}}, "study.cluster.executor: must be one of local, slurm, submitit-local"),
]


def snapshot(folder: Path) -> dict:
    """Every file under a finished folder with its bytes: nothing may change."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def expect_one_line_error(capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code != 0
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0] and err[0].startswith("kd-ls: error: "), err


@pytest.mark.parametrize("change, message", STUDY_CASES)
def test_malformed_study_file(reference_study, tmp_path, capsys, change, message):
    raw = yaml.safe_load(TINY_STUDY.read_text())
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) and isinstance(value, dict) else value
    raw["output"] = str(reference_study)  # aimed at a finished study: it must stay untouched
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    before = snapshot(reference_study)
    expect_one_line_error(capsys, ["study", "--config", str(path)], message)
    assert snapshot(reference_study) == before


def three_class_folder(root: Path) -> Path:
    """A real image-folder tree with 3 classes (random 32x32 PNGs)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("a", "b", "c"):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


def test_cli_calls(tiny_teacher, reference_study, tmp_path, capsys):
    """The command-line side of the table: fit, study, report with bad arguments."""
    ckpt = str(tiny_teacher / "checkpoints" / "last.ckpt")
    before = snapshot(tiny_teacher), snapshot(reference_study)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    fit = ["fit", "--config", str(TEACHER_CONFIG), "--trainer.default_root_dir", str(tmp_path / "run"), *TINY]
    student = ["fit", "--config", str(STUDENT_CONFIG), "--trainer.default_root_dir", str(tmp_path / "s"), *TINY]
    cases = [
        (fit + ["--model.init_args.alpha", "1.5"], "alpha must be in [0, 1), got 1.5"),
        (fit + ["--trainer.max_epochs", "abc"], "trainer.max_epochs: Expected a <class 'int'>. Got value: abc"),
        (fit + ["--model.init_args.colour", "red"], "model: Option 'colour' is not accepted"),
        (fit + ["--model.init_args.net", "resnet9000"], "model name 'resnet9000' is unknown; choose one of:"),
        (fit + ["--model.init_args.schedule", "linear"], "model.schedule must be one of cosine, multistep, constant"),
        (fit + ["--model.init_args.steps_per_call", "0"], "model.steps_per_call must be >= 1, got 0"),
        (fit + ["--trainer.gradient_clip_val", "1.0"],
         "trainer.gradient_clip_val: not available with model.steps_per_call=64 (kd-ls takes those steps itself); "
         "set model.steps_per_call=1"),
        (student + ["--model.init_args.teacher_ckpt", str(tmp_path / "none.ckpt")], "model.teacher_ckpt: no checkpoint at"),
        (student + ["--model.init_args.temperature", "0"], "temperature must be > 0, got 0.0"),
        (student + ["--model.init_args.teacher_ckpt", ckpt, "--data", "kd_ls.data.ImageFolder",
                    "--data.init_args.path", str(three_class_folder(tmp_path / "three")),
                    "--data.init_args.cache_dir", str(tmp_path / "cache")],
         "model.teacher_ckpt: the teacher predicts 10 classes but the student's data has 3"),
        (fit + ["--data", "kd_ls.data.ImageFolder", "--data.init_args.path", str(tmp_path / "missing")],
         "data.path: '" + str(tmp_path / "missing") + "' does not exist"),
        (["study", "--config", str(TINY_STUDY), "--output", str(blocker / "sub")], "study.output: cannot write to"),
        (["study", "--config", str(tmp_path / "nope.yaml")], "study file: '"),
        (["study", "--config", str(TINY_STUDY), "--jobs", "0"], "--jobs must be >= 1, got 0"),
        (["report", str(tmp_path)], "STUDY_DIR: '" + str(tmp_path) + "' holds no study.json"),
    ]
    for argv, message in cases:
        expect_one_line_error(capsys, argv, message)
    assert (snapshot(tiny_teacher), snapshot(reference_study)) == before


def test_a_second_study_on_a_busy_folder_refuses(reference_study, capsys):
    from kd_ls.study import study_lock

    with study_lock(reference_study):  # the first study holds the folder
        expect_one_line_error(capsys, ["study", "--config", str(TINY_STUDY), "--output", str(reference_study)],
                              f"study.output: '{reference_study}' is in use by pid")
