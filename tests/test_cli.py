"""The Lightning CLI end to end on real MNIST-1D: teacher, student, reproducibility, errors."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import STUDENT_CONFIG, TEACHER_CONFIG, TINY, fit
from kd_ls.lightning import Student


def test_teacher_run_folder_holds_config_checkpoint_and_metrics(tiny_teacher):
    metrics = json.loads((tiny_teacher / "metrics.json").read_text())
    for key in ("train/acc", "val/acc", "val/nll", "val/ece", "test/acc", "test/nll", "test/ece",
                "test/ece_ts", "test/ts_temperature", "test/smoothness_T4", "test/r2", "test/nc1"):
        assert key in metrics, key
    assert metrics["test/acc"] > 0.5  # 4 epochs on 1,600 samples: well above chance (0.1)
    config = yaml.safe_load((tiny_teacher / "config.yaml").read_text())
    assert config["model"]["class_path"] == "kd_ls.lightning.Teacher"
    assert config["trainer"]["max_epochs"] == 4
    assert (tiny_teacher / "checkpoints" / "last.ckpt").is_file()
    assert (tiny_teacher / "metrics.csv").is_file()


def test_student_distils_from_teacher_checkpoint(tiny_teacher, tmp_path):
    ckpt = tiny_teacher / "checkpoints" / "last.ckpt"
    metrics = fit(STUDENT_CONFIG, tmp_path, "--model.init_args.teacher_ckpt", str(ckpt))
    assert 0.0 <= metrics["test/agreement"] <= 1.0 and metrics["test/kl_teacher"] >= 0
    assert metrics["test/acc"] > 0.2
    # the student's checkpoint leaves the teacher's weights out
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state and not any(k.startswith("teacher.") for k in state)


def test_student_alone_is_the_baseline(tmp_path):
    metrics = fit(STUDENT_CONFIG, tmp_path, "--model.init_args.teacher_ckpt", "null", "--model.init_args.alpha", "0.1")
    assert "test/agreement" not in metrics and metrics["test/acc"] > 0.2


def test_same_seed_gives_identical_metrics(tmp_path):
    first = fit(TEACHER_CONFIG, tmp_path / "a", "--trainer.max_epochs", "2")
    second = fit(TEACHER_CONFIG, tmp_path / "b", "--trainer.max_epochs", "2")
    assert first == second
    third = fit(TEACHER_CONFIG, tmp_path / "c", "--trainer.max_epochs", "2", "--seed_everything", "1")
    assert third != first


def test_frozen_teacher_and_paired_initialisation(tiny_teacher):
    ckpt = str(tiny_teacher / "checkpoints" / "last.ckpt")
    torch.manual_seed(5)
    with_teacher = Student(net="mlp", net_kwargs={"widths": [32]}, input_shape=(1, 40), teacher_ckpt=ckpt)
    torch.manual_seed(5)
    alone = Student(net="mlp", net_kwargs={"widths": [32]}, input_shape=(1, 40))
    # same seed, same student weights, whether or not a teacher was loaded
    for a, b in zip(with_teacher.net.parameters(), alone.net.parameters()):
        assert torch.equal(a, b)
    with_teacher.train()
    assert not with_teacher.teacher.training
    assert not any(p.requires_grad for p in with_teacher.teacher.parameters())


def test_missing_checkpoint_and_class_mismatch_errors(tiny_teacher, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.teacher_ckpt: no checkpoint at"):
        Student(net="mlp", input_shape=(1, 40), teacher_ckpt=str(tmp_path / "missing.ckpt"))
    ckpt = str(tiny_teacher / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError, match="model.teacher_ckpt: the teacher predicts 10 classes but the student's data has 100"):
        Student(net="mlp", input_shape=(1, 40), num_classes=100, teacher_ckpt=ckpt)


BAD_OVERRIDES = [
    (["--model.init_args.alpha", "1.5"], r"kd-ls: error: alpha must be in [0, 1), got 1.5"),
    (["--model.init_args.convention", "smooth"], "kd-ls: error: convention must be one of uniform, others, adaptive, online"),
    (["--model.init_args.net", "resnet9000"], "kd-ls: error: model name 'resnet9000' is unknown; choose one of:"),
    (["--model.init_args.optimizer", "lion"], "kd-ls: error: model.optimizer must be one of sgd, adamw"),
]


def test_cli_bad_input_is_one_line_and_exit_2_in_a_shell(tmp_path):
    """As a user's shell sees it: a fresh interpreter, the one-line error last, exit code 2."""
    override, message = BAD_OVERRIDES[0]
    proc = subprocess.run(
        [sys.executable, "-m", "kd_ls.commands.main", "fit", "--config", str(TEACHER_CONFIG),
         "--trainer.default_root_dir", str(tmp_path), *TINY, *override],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(message), proc.stderr[-2000:]
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("override, message", BAD_OVERRIDES)
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, capsys, override, message):
    from kd_ls.commands.main import main

    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(TEACHER_CONFIG), "--trainer.default_root_dir", str(tmp_path), *TINY, *override])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(message)
    assert not (tmp_path / "metrics.json").exists()


def test_ddp_two_processes_report_the_single_process_test_accuracy(tmp_path):
    """Metrics reduced across ranks: DDP's reported test accuracy equals evaluating its
    checkpoint in one process (Lightning DDP, 2 CPU processes, gloo)."""
    run = tmp_path / "ddp"
    common = [sys.executable, "-m", "kd_ls.commands.main"]
    subprocess.run([*common, "fit", "--config", str(TEACHER_CONFIG), "--trainer.default_root_dir", str(run), *TINY,
                    "--trainer.max_epochs", "2", "--trainer.strategy", "ddp", "--trainer.devices", "2",
                    "--trainer.accelerator", "cpu"], check=True, capture_output=True)
    subprocess.run([*common, "test", "--config", str(run / "config.yaml"), "--ckpt_path",
                    str(run / "checkpoints" / "last.ckpt"), "--trainer.strategy", "auto", "--trainer.devices", "1",
                    "--trainer.default_root_dir", str(tmp_path / "single")], check=True, capture_output=True)
    ddp = json.loads((run / "metrics.json").read_text())
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    for key in ("test/acc", "test/nll", "test/ece", "test/ts_temperature"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-5), key


def test_lightning_nvml_check_is_undone_where_there_is_no_nvml():
    """Lightning's import sets PYTORCH_NVML_BASED_CUDA_CHECK=1, which without an NVIDIA driver
    makes every AdamW step try to load NVML; kd-ls undoes it there and keeps it elsewhere."""
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        expected = "1"
    except OSError:
        expected = "None"
    code = "import os, kd_ls.lightning; print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected
