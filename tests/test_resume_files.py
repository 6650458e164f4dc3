"""The files of a fit's resumable checkpoint: RUN/checkpoints/resume.ckpt links to one data file
that holds the epochs so far; leftovers of a killed save go at the next save; nothing is left
when the fit ends. A strategy that writes checkpoints its own way gets a plain file.
(Stops and bit-identical resumes: test_resume.py, test_signals.py.)"""

import os
from pathlib import Path

import torch
from pytorch_lightning import Callback
from pytorch_lightning.strategies import SingleDeviceStrategy

from conftest import ROOT
from kd_ls.commands.main import main

EPOCHS = 4
SEEN: list[dict] = []  # what FileWatcher saw, one entry per epoch start after the first


class FileWatcher(Callback):
    """At each epoch start, what the previous epoch end left in the checkpoints folder."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            return
        folder = Path(trainer.default_root_dir) / "checkpoints"
        resume = folder / "resume.ckpt"
        SEEN.append({"epoch": trainer.current_epoch, "link": os.readlink(resume) if resume.is_symlink() else None,
                     "files": sorted(p.name for p in folder.iterdir() if p.name.startswith(".")),
                     "saved_epochs": torch.load(resume, map_location="cpu", weights_only=False)["epoch"] + 1})


class OwnWriterStrategy(SingleDeviceStrategy):
    """A strategy with its own save_checkpoint, as sharded and DeepSpeed strategies have."""

    def save_checkpoint(self, checkpoint, filepath, storage_options=None) -> None:
        super().save_checkpoint(checkpoint, filepath, storage_options)


def fit(run: Path, *extra: str) -> None:
    SEEN.clear()
    main(["fit", "--config", str(ROOT / "configs" / "teacher" / "digits.yaml"), "--trainer.default_root_dir", str(run),
          "--trainer.max_epochs", str(EPOCHS), "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--trainer.callbacks", "test_resume_files.FileWatcher", *extra])


def test_resume_ckpt_links_to_one_data_file_and_leftovers_go(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / ".resume-epoch=9-0badf00d.ckpt").write_bytes(b"half a save")  # a killed save's file
    (run / "checkpoints" / ".resume.ckpt.link").symlink_to("nowhere")  # killed before its rename
    fit(run)
    assert [s["epoch"] for s in SEEN] == list(range(1, EPOCHS)) and [s["saved_epochs"] for s in SEEN] == [1, 2, 3]
    for seen in SEEN:
        assert seen["link"].startswith(f".resume-epoch={seen['epoch']}-") and seen["link"].endswith(".ckpt"), seen
        assert seen["files"] == [seen["link"]], seen  # the older data files and the killed save's leftovers went
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]  # the run ended


def test_a_strategy_with_its_own_writer_saves_a_plain_file(tmp_path):
    fit(tmp_path / "run", "--trainer.strategy", '{"class_path": "test_resume_files.OwnWriterStrategy"}')
    assert [s["link"] for s in SEEN] == [None] * (EPOCHS - 1) and [s["saved_epochs"] for s in SEEN] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["last.ckpt"]
