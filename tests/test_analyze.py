"""`kd-ls analyze`: metrics, plots and saved outputs of a checkpoint, checked against its training run."""

import json
import math
import shutil

import pytest
import torch

from conftest import STUDENT_CONFIG, fit
from kd_ls.analysis import analyze_checkpoint
from kd_ls.data import datamodule_from_config
from kd_ls.commands.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
KEYS = {
    "acc", "acc5", "nll", "ece", "mce", "ts_temperature", "ece_ts", "nll_ts",
    "smoothness_T1", "smoothness_T2", "smoothness_T4", "smoothness_T8",
    "r2", "nc1", "variance_ratio", "cdnv", "silhouette", "stability", "davies_bouldin", "calinski_harabasz",
    "mutual_information", "mi_examples", "mi_views", "mi_input_noise_std",
}


@pytest.fixture(scope="module")
def cli_analysis(tiny_teacher, tmp_path_factory):
    """`kd-ls analyze` run once on the tiny teacher; returns its output folder."""
    out = tmp_path_factory.mktemp("analysis")
    main(["analyze", str(tiny_teacher / "checkpoints" / "last.ckpt"), "--out", str(out), "--device", "cpu"])
    return out


def test_metrics_json_has_every_metric_in_range(cli_analysis):
    values = json.loads((cli_analysis / "metrics.json").read_text())
    assert set(values) == KEYS  # a teacher: no agreement / KL
    for name in ("acc", "acc5", "ece", "mce", "ece_ts", "r2", "stability"):
        assert 0.0 <= values[name] <= 1.0, name
    assert values["acc"] > 0.3  # 10 classes: well above chance after 4 epochs
    assert values["ts_temperature"] > 0 and values["nll_ts"] <= values["nll"] + 1e-9
    assert 0.0 <= values["smoothness_T1"] <= values["smoothness_T8"] <= 1.0
    assert values["nc1"] >= 0 and values["davies_bouldin"] >= 0 and values["calinski_harabasz"] > 0
    assert values["mi_views"] == 5 and values["mi_input_noise_std"] > 0  # MNIST-1D does not augment
    assert 0.0 <= values["mutual_information"] <= math.log(values["mi_examples"])


def test_plots_are_png_files(cli_analysis):
    for name in ("muller_projection.png", "reliability_diagram.png"):
        assert (cli_analysis / name).read_bytes()[:8] == PNG_MAGIC, name


def test_saved_outputs_reproduce_the_accuracy(cli_analysis):
    saved = torch.load(cli_analysis / "features.pt")
    values = json.loads((cli_analysis / "metrics.json").read_text())
    assert saved["logits"].shape[0] == saved["features"].shape[0] == saved["labels"].shape[0]
    acc = (saved["logits"].argmax(1) == saved["labels"]).double().mean().item()
    assert acc == pytest.approx(values["acc"], abs=1e-6)  # metrics.json: float32 mean


def test_function_evaluates_like_training_and_is_deterministic(tiny_teacher, cli_analysis, tmp_path):
    # A --data style file with class_path/init_args at top level, taken from the run's config.
    import yaml

    data = yaml.safe_load((tiny_teacher / "config.yaml").read_text())["data"]
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    values = analyze_checkpoint(str(tiny_teacher / "checkpoints" / "last.ckpt"),
                                datamodule_from_config(tmp_path / "data.yaml"), tmp_path / "out", device="cpu")
    trained = json.loads((tiny_teacher / "metrics.json").read_text())
    for name in ("acc", "ece", "r2", "nc1", "ts_temperature"):
        assert values[name] == pytest.approx(trained[f"test/{name}"], abs=1e-6), name
    assert values == json.loads((cli_analysis / "metrics.json").read_text())  # seeded: reruns agree


def test_student_reports_agreement_with_its_teacher(tiny_teacher, tmp_path):
    ckpt = tiny_teacher / "checkpoints" / "last.ckpt"
    fit(STUDENT_CONFIG, tmp_path / "student", "--model.init_args.teacher_ckpt", str(ckpt), "--trainer.max_epochs", "1")
    main(["analyze", str(tmp_path / "student" / "checkpoints" / "last.ckpt"), "--split", "val", "--views", "2"])
    out = tmp_path / "student" / "analysis" / "val"
    values = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= values["agreement"] <= 1.0 and values["kl_teacher"] >= 0.0
    assert "teacher_logits" in torch.load(out / "features.pt")


def test_bad_paths_are_one_line_errors(tiny_teacher, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(tmp_path / "missing.ckpt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("kd-ls: error: CKPT:") and err.count("\n") == 1

    lone = tmp_path / "lone.ckpt"  # a checkpoint outside any run folder needs --data
    shutil.copy(tiny_teacher / "checkpoints" / "last.ckpt", lone)
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(lone)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("kd-ls: error: --data:")
