"""Bad input, table-driven: each malformed study file, dataset or CLI call is refused before
any training with a one-line error that names the field or file, exit code 2, and leaves
finished results untouched."""

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import ROOT, STUDENT_CONFIG, TEACHER_CONFIG, TINY, TINY_STUDY
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
    ({"student": {"dropout": 0.5}}, "study.student.dropout: unknown key; allowed: model, model_kwargs, "),
    ({"student": {"steps_per_call": 0}}, "study.student.steps_per_call: must be >= 1, got 0"),
    ({"dataset": {"name": "imagenet"}}, "study.dataset.name: 'imagenet' is unknown; choose one of: mnist1d"),
    ({"dataset": {"name": "image_folder", "options": {"path": "/no/such/cifar.tar.gz"}}},
     "study.dataset.options: data.path: '/no/such/cifar.tar.gz' does not exist"),
    ({"dataset": {"name": "mnist1d", "options": {"num_sample": 10}}}, "study.dataset.options: "),
    ({"convention": "smooth"}, "study.convention: must be one of uniform, others, adaptive, online; got 'smooth'"),
    ({"logger": "tensorboard"}, "study.logger: must be one of csv, wandb; got 'tensorboard'"),
    ({"cluster": {"executor": "kubernetes"}}, "study.cluster.executor: must be one of local, slurm, submitit-local"),
    ({"seeds": [-1]}, "study.seeds[0]: must be in [0, 4294967295], got -1"),
    ({"trainer": {"precission": "bf16-mixed"}}, "study.trainer.precission: not a Lightning Trainer argument; did you "
                                                "mean precision? allowed: accelerator, strategy, devices"),
    ({"trainer": {"max_epoch": 3}}, "study.trainer.max_epoch: not a Lightning Trainer argument; did you mean "
                                    "max_epochs? The study sets that one (study.teacher.epochs / study.student.epochs)"),
    ({"trainer": {"max_epochs": 3}}, "study.trainer.max_epochs: set by the study (study.teacher.epochs / "
                                     "study.student.epochs), not here"),
    ({"student": {"optimizer": "sgd", "momentum": 2.0}}, "study.student.momentum: must be in [0, 1), got 2.0"),
    ({"teacher": {"weight_decay": -0.1}}, "study.teacher.weight_decay: must be a finite number >= 0, got -0.1"),
    ({"teacher": {"warmup_epochs": 3}},
     "study.teacher.warmup_epochs: must be shorter than the run (study.teacher.epochs=2), got 3"),
    ({"teacher": {"schedule": "multistep", "milestones": [0.5, 1.5]}},
     "study.teacher.milestones: must lie in (0, 1) (fractions of the run), got [0.5, 1.5]"),
    ({"alphas": [0.1, 0.1]}, "study.alphas: values must be distinct, got [0.1, 0.1]"),
    ({"primary": {"precondition": "poold"}}, "study.primary.precondition: must be one of pooled, val_chosen; got "
                                             "'poold'; did you mean pooled?"),
    ({"primary": {"alphas": [0.5]}}, "study.primary.alphas[0]: 0.5 is not an LS alpha of the study"),
    ({"primary": {"margin_pp": 0}}, "study.primary.margin_pp: must be > 0, got 0.0"),
    ({"primary": {"marign_pp": 1}}, "study.primary.marign_pp: unknown key; allowed: alphas, temperatures, loss, "
                                    "margin_pp, precondition; did you mean margin_pp?"),
    ({"until_decided": {"max_seeds": 1}}, "study.until_decided.max_seeds: must be more than the study's"),
    ({"temperatures": [2, 2]}, "study.temperatures: values must be distinct, got [2.0, 2.0]"),
    ({"ls_temperatures": [1, 1]}, "study.ls_temperatures: values must be distinct, got [1.0, 1.0]"),
    ({"beta": float("nan")}, "study.beta: must be a finite number, got nan"),
    ({"teacher": {"lr": float("inf")}}, "study.teacher.lr: must be a finite number, got inf"),
    ({"temperatures": [1, float("-inf")]}, "study.temperatures[1]: must be a finite number, got -inf"),
    ({"trainer": {"gradient_clip_val": float("inf")}}, "study.trainer.gradient_clip_val: must be a finite number, got inf"),
    ({"dataset": {"name": "mnist1d", "options": {"val_fraction": float("nan")}}},
     "study.dataset.options.val_fraction: must be a finite number, got nan"),
    ({"dataset": {"name": "mnist1d", "options": {"train_split": 1.5}}},
     "study.dataset.options: data.train_split must be in (0, 1), got 1.5"),
]


def snapshot(folder: Path) -> dict:
    """Every file under a finished folder with its bytes: nothing may change."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def expect_one_line_error(capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
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


def write_study(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


STUDY_FILE_CASES = [
    (b"", "study file: '{path}' is empty; give at least the dataset, alphas, temperatures and seeds"),
    (b"# nothing but a comment\n", "study file: '{path}' is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "study file: '{path}' is not a YAML text file (byte 0 is not UTF-8)"),
]


@pytest.mark.parametrize("content, message", STUDY_FILE_CASES)
def test_unusable_study_file(tmp_path, capsys, content, message):
    path = tmp_path / "study.yaml"
    path.write_bytes(content)
    expect_one_line_error(capsys, ["study", "--config", str(path), "--output", str(tmp_path / "out")],
                          message.format(path=path))
    assert not (tmp_path / "out").exists()  # refused before anything was made


def three_class_folder(root: Path, size: int = 32, test_classes: tuple = ("a", "b", "c")) -> Path:
    """A real image-folder tree with 3 classes of random size x size PNGs (test/ may list others)."""
    rng = np.random.default_rng(0)
    for split, names in (("train", ("a", "b", "c")), ("test", test_classes)):
        for name in names:
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


def archive(folder: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar")
    return path


def corrupt_archive(tmp: Path, monkeypatch) -> Path:
    (tmp / "cifar.tar.gz").write_bytes(b"\x1f\x8b not really gzip" * 20)
    return tmp / "cifar.tar.gz"


def truncated_archive(tmp: Path, monkeypatch) -> Path:
    whole = archive(three_class_folder(tmp / "tree"), tmp / "whole.tar.gz").read_bytes()
    (tmp / "cifar.tar.gz").write_bytes(whole[: len(whole) // 2])
    return tmp / "cifar.tar.gz"


def class_only_in_test(tmp: Path, monkeypatch) -> Path:
    return three_class_folder(tmp / "tree", test_classes=("a", "b", "c", "d"))


def empty_class_folder(tmp: Path, monkeypatch) -> Path:
    (three_class_folder(tmp / "tree") / "train" / "e").mkdir()
    return tmp / "tree"


def mixed_sizes(tmp: Path, monkeypatch) -> Path:
    root = three_class_folder(tmp / "tree")
    Image.new("RGB", (16, 16)).save(root / "train" / "b" / "1.png")
    return root


def flat_folder(tmp: Path, monkeypatch) -> Path:
    (tmp / "tree").mkdir()
    Image.new("RGB", (32, 32)).save(tmp / "tree" / "0.png")
    return tmp / "tree"


def cache_is_a_file(tmp: Path, monkeypatch) -> Path:
    (tmp / "cache-file").write_text("")
    monkeypatch.setenv("KD_LS_CACHE", str(tmp / "cache-file"))
    return three_class_folder(tmp / "tree")


def cache_unwritable(tmp: Path, monkeypatch) -> Path:
    monkeypatch.setenv("KD_LS_CACHE", "/proc/kd-ls-cache")  # no process, root included, can create it
    return three_class_folder(tmp / "tree")


def small_images(tmp: Path, monkeypatch) -> Path:
    return three_class_folder(tmp / "tree", size=8)  # read as 3x8x8, which conv1d (the teacher) cannot take


IMAGE_FOLDER_CASES = [
    (corrupt_archive, "study.dataset.options: data.path: '{path}' is not a readable folder or .tar / .tar.gz archive"),
    (truncated_archive, "study.dataset.options: data.path: '{path}' is not a readable folder or .tar / .tar.gz archive"),
    (class_only_in_test, "study.dataset.options: data.path: class folder(s) test/d of '{path}' have no train/ "
                         "counterpart; classes in train/: a, b, c"),
    (empty_class_folder, "study.dataset.options: data.path: class folder 'train/e' of '{path}' holds no images"),
    (mixed_sizes, "study.dataset.options: data.path: '{path}/train/b/1.png' is 16x16 pixels but '{path}/test/a/0.png' "
                  "is 32x32 pixels; every image must have the same size"),
    (flat_folder, "study.dataset.options: data.path: '{path}' holds no train/<class>/ and test/<class>/ image folders"),
    (cache_is_a_file, "study.dataset.options: KD_LS_CACHE: cannot keep the dataset cache in '{tmp}/cache-file' (it, or "
                      "a folder above it, is a file); point KD_LS_CACHE at a writable folder"),
    (cache_unwritable, "study.dataset.options: KD_LS_CACHE: cannot keep the dataset cache in '/proc/kd-ls-cache'"),
    (small_images, "study.teacher.model: input_shape (3, 8, 8) is invalid for model 'conv1d'"),
]


@pytest.mark.parametrize("make, message", IMAGE_FOLDER_CASES, ids=[make.__name__ for make, _ in IMAGE_FOLDER_CASES])
def test_unusable_image_folder(tmp_path, capsys, monkeypatch, make, message):
    path = make(tmp_path, monkeypatch)
    raw = {**yaml.safe_load(TINY_STUDY.read_text()), "output": str(tmp_path / "out"),
           "dataset": {"name": "image_folder", "options": {"path": str(path)}}}
    expect_one_line_error(capsys, ["study", "--config", str(write_study(tmp_path / "study.yaml", raw))],
                          message.format(path=path, tmp=tmp_path))
    assert not (tmp_path / "out").exists()


def test_cli_calls(tiny_teacher, reference_study, tmp_path, capsys):
    """The command-line side of the table: fit, study, report with bad arguments."""
    ckpt = str(tiny_teacher / "checkpoints" / "last.ckpt")
    before = snapshot(tiny_teacher), snapshot(reference_study)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    binary = tmp_path / "config.ckpt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    truncated = tmp_path / "truncated" / "checkpoints" / "last.ckpt"  # as a full disk or a killed copy leaves it
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(Path(ckpt).read_bytes()[: Path(ckpt).stat().st_size // 2])
    shutil.copy(tiny_teacher / "config.yaml", truncated.parent.parent / "config.yaml")
    committed = tmp_path / "committed"  # a study result as committed under experiments/: no runs/
    shutil.copytree(ROOT / "experiments" / "mueller2019_calibration" / "mnist1d", committed,
                    ignore=shutil.ignore_patterns("runs"))  # runs/ exists only where someone re-ran it
    committed_before = snapshot(committed)
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
        (fit + ["--trainer.max_epochs", "-1"],
         "trainer.max_epochs: must be >= 1, or -1 (no epoch limit) with trainer.max_steps > 0"),
        (fit + ["--model.init_args.optimizer", "sgd", "--model.init_args.momentum", "2.0"],
         "model.momentum must be in [0, 1), got 2.0"),
        (fit + ["--model.init_args.lr", "nan"], "model: Expected a <class 'float'>. Got value: nan"),  # jsonargparse's
        (fit + ["--model.init_args.lr", "1e400"], "model.lr must be a finite number > 0, got inf"),
        (fit + ["--model.init_args.weight_decay", "-0.1"], "model.weight_decay must be a finite number >= 0, got -0.1"),
        (fit + ["--data.init_args.seed", "-1"], "data.seed must be in [0, 4294967295], got -1"),
        (fit + ["--resume.every_n_epochs", "0"], "resume.every_n_epochs must be >= 1, got 0"),
        (fit + ["--data", "kd_ls.data.ImageFolder", "--data.init_args.path", str(three_class_folder(tmp_path / "tree")),
                "--data.init_args.cache_dir", str(blocker)],
         f"data.cache_dir: cannot keep the dataset cache in '{blocker}' (it, or a folder above it, is a file)"),
        (["fit", "--config", str(binary)], f"--config: '{binary}' is not a YAML text file (byte 0 is not UTF-8)"),
        (["analyze", str(truncated)], f"CKPT: '{truncated}' is not a readable torch checkpoint"),
        (["analyze", ckpt, "--data", str(binary)], f"--data: '{binary}' is not a YAML text file (byte 0 is not UTF-8)"),
        (["report", str(committed)], f"STUDY_DIR: '{committed}' lacks the records of 30 of the 30 finished runs"),
    ]
    if not torch.cuda.is_available():  # Lightning's MisconfigurationException, as one line
        cases.append((fit + ["--trainer.accelerator", "gpu"], "trainer: No supported gpu backend found!"))
    for argv, message in cases:
        expect_one_line_error(capsys, argv, message)
    assert (snapshot(tiny_teacher), snapshot(reference_study)) == before
    assert snapshot(committed) == committed_before  # its tables were not emptied


def test_a_second_study_on_a_busy_folder_refuses(reference_study, capsys):
    from kd_ls.study import study_lock

    with study_lock(reference_study):  # the first study holds the folder
        expect_one_line_error(capsys, ["study", "--config", str(TINY_STUDY), "--output", str(reference_study)],
                              f"study.output: '{reference_study}' is in use by pid")


def test_a_download_without_a_network_is_one_line(tmp_path, capsys, monkeypatch):
    """`data.download: true` where the network is unreachable (a proxy nothing listens on)."""
    import urllib.request

    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen's opener, built with that proxy, goes after
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    root = tmp_path / "cifar"
    expect_one_line_error(capsys, ["fit", "--config", str(ROOT / "configs" / "teacher" / "cifar10.yaml"),
                                   "--data.init_args.root", str(root), "--data.init_args.download", "true",
                                   "--trainer.default_root_dir", str(tmp_path / "run")],
                          f"data.download: could not fetch CIFAR10 into '{root}'")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_an_image_folder_path_may_name_an_environment_variable(tmp_path, capsys, monkeypatch):
    """`path: "${VAR}"` in a study file: read from the variable; refused, naming it, when unset."""
    from kd_ls.data import ImageFolder

    tree = three_class_folder(tmp_path / "tree")
    monkeypatch.setenv("KD_LS_TEST_IMAGES", str(tree))
    module = ImageFolder(path="${KD_LS_TEST_IMAGES}", cache_dir=str(tmp_path / "cache"))
    assert module.path == tree and module.input_shape == (3, 32, 32)
    monkeypatch.delenv("KD_LS_TEST_IMAGES")
    raw = {**yaml.safe_load(TINY_STUDY.read_text()), "output": str(tmp_path / "out"),
           "dataset": {"name": "image_folder", "options": {"path": "${KD_LS_TEST_IMAGES}"}}}
    expect_one_line_error(capsys, ["study", "--config", str(write_study(tmp_path / "study.yaml", raw))],
                          "study.dataset.options: data.path: '${KD_LS_TEST_IMAGES}' names an environment variable "
                          "that is not set")
    assert not (tmp_path / "out").exists()
