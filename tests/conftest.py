"""Shared helpers: tiny real-data runs through the real CLI, W&B kept offline."""

import csv
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEACHER_CONFIG = ROOT / "configs" / "teacher" / "mnist1d.yaml"
STUDENT_CONFIG = ROOT / "configs" / "student" / "mnist1d.yaml"
# Short settings: a real MNIST-1D run in a few seconds on 2 CPU cores.
TINY = ["--data.init_args.num_samples", "2000", "--data.init_args.batch_size", "32", "--trainer.max_epochs", "4", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false"]


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch, tmp_path):
    """W&B never reaches the network in tests, and writes under the test's folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("KD_LS_CACHE", str(tmp_path / "cache"))


def fit(config: Path, run_dir: Path, *extra: str) -> dict:
    """`kd-ls fit --config CONFIG` in this process; returns the run's metrics.json."""
    from kd_ls.commands.main import main

    main(["fit", "--config", str(config), "--trainer.default_root_dir", str(run_dir), *TINY, *extra])
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A tiny MNIST-1D teacher run folder, trained once per test session."""
    run_dir = tmp_path_factory.mktemp("teacher")
    os.environ.setdefault("KD_LS_CACHE", str(run_dir / "cache"))
    fit(TEACHER_CONFIG, run_dir)
    return run_dir


TINY_STUDY = Path(__file__).parent / "data" / "tiny_study.yaml"


def tiny(output: Path, **changes):
    """The tiny test study writing to `output`, with top-level fields changed."""
    from kd_ls.study import load_study

    study = load_study(TINY_STUDY)
    study.output = str(output)
    for key, value in changes.items():
        setattr(study, key, value)
    return study


def results(study_dir: Path) -> list[dict]:
    """results.csv rows without the wall-clock column (the only thing allowed to differ)."""
    with open(study_dir / "results.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.fixture(scope="session")
def reference_study(tmp_path_factory) -> Path:
    """The tiny study run once, uninterrupted, with two worker processes.

    Per-run CPU thread counts follow --jobs (cores // jobs), and float32 reductions depend on
    them, so bit-identical comparisons use the same --jobs."""
    from kd_ls.study import run_study

    out = tmp_path_factory.mktemp("reference")
    run_study(tiny(out), jobs=2, progress=False)
    return out
