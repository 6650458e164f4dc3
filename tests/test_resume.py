"""A run folder across stops and evaluations: a `kd-ls fit` killed (SIGKILL), terminated
(SIGTERM) and interrupted (SIGINT) at several epochs resumes to the numbers and weights of an
uninterrupted run, and `kd-ls test` / `validate` leave the run's files as they were.

The run exercises every piece of state a resume must restore: dropout (torch's global
generator), augmentation (the data module's generator), the training batches' order, online
label smoothing's per-epoch targets, grouped optimizer steps and a warm-up + multistep schedule.
Bit-identity on CPU needs the same thread count: one thread, in and out of process.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import torch

from conftest import ROOT
from kd_ls.commands.main import main

EPOCHS = 6
FIT = ["fit", "--config", str(ROOT / "configs" / "teacher" / "digits.yaml"), "--trainer.max_epochs", str(EPOCHS),
       "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
       "--model.init_args.net_kwargs", '{"widths": [64], "dropout": 0.1}', "--model.init_args.convention", "online",
       "--model.init_args.alpha", "0.1", "--model.init_args.steps_per_call", "4",
       "--model.init_args.schedule", "multistep", "--model.init_args.milestones", "[0.5]",
       "--model.init_args.warmup_epochs", "1", "--data.init_args.augment", "true", "--data.init_args.batch_size", "16"]


def fit_args(run_dir: Path) -> list[str]:
    return [*FIT, "--trainer.default_root_dir", str(run_dir)]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread here, as OMP_NUM_THREADS=1 gives the subprocesses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {**os.environ, "OMP_NUM_THREADS": "1"}
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def uninterrupted(one_thread, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    main(fit_args(run_dir))
    return run_dir


def saved_epochs(run_dir: Path) -> Optional[int]:
    """Epochs in the run's resumable checkpoint (None: none yet)."""
    path = run_dir / "checkpoints" / "resume.ckpt"
    return torch.load(path, map_location="cpu", weights_only=False)["epoch"] + 1 if path.is_file() else None


def stop_after(run_dir: Path, epochs: int, signum: int, env: dict) -> tuple[int, str]:
    """`kd-ls fit` in a subprocess, sent `signum` once its resumable checkpoint holds `epochs`
    epochs and at least one more than when it started (so the signal meets a running fit, never
    an interpreter still starting); its exit code and the last line of its stderr."""
    epochs = max(epochs, (saved_epochs(run_dir) or 0) + 1)
    proc = subprocess.Popen([sys.executable, "-m", "kd_ls.commands.main", *fit_args(run_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and (saved_epochs(run_dir) or 0) < epochs:
        time.sleep(0.01)
    proc.send_signal(signum)
    err = proc.communicate()[1].strip().splitlines()
    return proc.returncode, err[-1] if err else ""


def states(run_dir: Path) -> tuple[dict, list]:
    """Weights and optimizer states of a run's last-epoch checkpoint."""
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"], ckpt["optimizer_states"]


def same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b))
    return a == b


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stopped_fits_resume_to_the_uninterrupted_numbers_and_weights(uninterrupted, one_thread, tmp_path):
    run = tmp_path / "run"
    stops = []
    for epochs, signum in ((1, signal.SIGKILL), (3, signal.SIGTERM), (4, signal.SIGINT)):
        code, last_line = stop_after(run, epochs, signum, one_thread)
        stops.append((saved_epochs(run), code))
        assert not (run / "metrics.json").exists(), "the run ended before the signal: nothing was resumed"
        if signum != signal.SIGKILL:
            assert last_line.startswith(f"kd-ls: stopped by {signal.Signals(signum).name}; "), last_line
    assert [code for _, code in stops] == [-signal.SIGKILL, 143, 130]
    saved = [epochs for epochs, _ in stops]
    assert saved[0] >= 1 and saved[1] >= 3 and saved[2] >= 4 and saved == sorted(saved), stops
    main(fit_args(run))  # resumes in this process from what the third stop left
    assert (run / "metrics.json").read_text() == (uninterrupted / "metrics.json").read_text()
    assert (run / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()  # earlier rows kept
    assert same_tensors(states(run), states(uninterrupted))
    assert not (run / "checkpoints" / "resume.ckpt").exists()  # the run ended: its resumable state is gone


def test_a_fit_with_another_config_refuses_to_resume_a_stopped_run(uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    # Any kd-ls checkpoint carries the fingerprint of its config: as resume.ckpt this one
    # stands for a run stopped after its last epoch.
    shutil.copy(run / "checkpoints" / "last.ckpt", run / "checkpoints" / "resume.ckpt")
    before = snapshot(run)
    with pytest.raises(SystemExit) as exit_info:
        main([*fit_args(run), "--model.init_args.lr", "0.01"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"kd-ls: error: trainer.default_root_dir: '{run}' holds the saved state of an interrupted "
                          "run of another config"), err
    assert snapshot(run) == before


@pytest.mark.parametrize("command", ["test", "validate"])
def test_evaluations_leave_the_training_run_untouched(uninterrupted, command):
    before = snapshot(uninterrupted)
    main([command, "--config", str(uninterrupted / "config.yaml"), "--ckpt_path",
          str(uninterrupted / "checkpoints" / "last.ckpt"), "--trainer.enable_progress_bar", "false"])
    after = snapshot(uninterrupted)
    evaluation = Path("evaluations") / f"{command}-last"
    assert {p: b for p, b in after.items() if evaluation not in p.parents} == before  # byte for byte
    split = "test" if command == "test" else "val"
    metrics = json.loads(after[evaluation / "metrics.json"])
    trained = json.loads(before[Path("metrics.json")])
    assert metrics[f"{split}/acc"] == trained[f"{split}/acc"] and metrics[f"{split}/nll"] == trained[f"{split}/nll"]


def test_an_evaluation_goes_to_the_folder_the_user_names(uninterrupted, tmp_path):
    before = snapshot(uninterrupted)
    out = tmp_path / "elsewhere"
    main(["test", "--config", str(uninterrupted / "config.yaml"), "--ckpt_path",
          str(uninterrupted / "checkpoints" / "last.ckpt"), "--trainer.default_root_dir", str(out),
          "--trainer.enable_progress_bar", "false"])
    assert json.loads((out / "metrics.json").read_text())["test/acc"] == \
        json.loads((uninterrupted / "metrics.json").read_text())["test/acc"]
    assert (out / "metrics.csv").is_file() and snapshot(uninterrupted) == before  # its logger went along
