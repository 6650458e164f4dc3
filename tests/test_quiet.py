"""A default `kd-ls fit` and `kd-ls study` print none of the messages kd_ls/lightning/quiet.py
silences (and the progress and summary kd-ls prints instead), while --verbose brings them back;
what a single run's offline W&B run holds is checked on the same fit.

Real subprocesses (a fresh interpreter per command, as a user runs them), real Lightning and
W&B in offline mode, with W&B's own silencing switched off so that kd-ls's is what is tested."""

import json
import os
import subprocess
import sys

import yaml

from conftest import ROOT, STUDENT_CONFIG, TINY_STUDY

# Each must not appear in a default run (see quiet.py and progress.py for why each is noise).
NOISE = {
    "litlogger tip": "💡 Tip",
    "LeafSpec deprecation": "LeafSpec",
    "FLOPs of the model summary": "FLOPs: 0",
    "Flops total of the text summary": "Total Flops",
    "frozen teacher in eval mode": "in eval mode at the start of training",
    "W&B chatter": "wandb:",
    "W&B symlink warnings": "Symlinked",
    "Lightning's stepping-batches note": "to estimate number of stepping batches",
    "Lightning's checkpoint note": "`weights_only` was not set",
}


def kd_ls(*args: str, cwd) -> str:
    """Run `kd-ls ARGS` in a subprocess; return its stdout and stderr together (it must succeed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT", "KD_LS_VERBOSE")}
    proc = subprocess.run([sys.executable, "-m", "kd_ls.commands.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def noise_in(output: str) -> dict[str, str]:
    """The silenced messages that appear in the output, with their lines."""
    lines = output.splitlines()
    return {name: next(line for line in lines if text in line) for name, text in NOISE.items() if text in output}


def test_default_fit_is_quiet_and_verbose_is_not(tiny_teacher, tmp_path):
    """A student fit logging to W&B offline: it has every source (Lightning's tips, the summary,
    the eval-mode teacher, W&B). Its W&B run holds the run folder's files and its metrics."""
    common = ["fit", "--config", str(STUDENT_CONFIG), "--model.init_args.teacher_ckpt",
              str(tiny_teacher / "checkpoints" / "last.ckpt"), "--data.init_args.num_samples", "600",
              "--trainer.max_epochs", "1", "--trainer.logger", "WandbLogger", "--trainer.logger.offline", "true",
              "--trainer.logger.project", "kd-ls-test"]
    quiet = kd_ls(*common, "--trainer.default_root_dir", str(tmp_path / "quiet"), cwd=tmp_path)
    assert noise_in(quiet) == {}
    assert "kd-ls fit: epoch 1/1  step " in quiet  # progress in epochs and optimizer steps, one line per epoch
    assert "in eval mode" in quiet and "frozen parameters" in quiet  # kd-ls's own summary: the teacher, frozen
    verbose = kd_ls(*common, "--trainer.default_root_dir", str(tmp_path / "verbose"), "--verbose", cwd=tmp_path)
    assert {"litlogger tip", "frozen teacher in eval mode", "W&B chatter"} <= set(noise_in(verbose))

    runs = list((tmp_path / "quiet" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files" / "kd-ls"  # the run folder's own files, beside W&B's config.yaml
    assert yaml.safe_load((files / "config.yaml").read_text())["model"]["class_path"] == "kd_ls.lightning.Student"
    assert "test/acc" in json.loads((files / "metrics.json").read_text()) and (files / "provenance.json").is_file()
    log = next(runs[0].glob("run-*.wandb")).read_bytes()  # W&B's record of the run: config and summary keys
    for key in (b"model.init_args.temperature", b"data.class_path", b"test/acc", b"val/acc"):
        assert key in log, key


def test_default_wandb_study_is_quiet(tmp_path):
    """A tiny offline W&B study (a teacher, its student, the summary run) in one process."""
    study = yaml.safe_load(TINY_STUDY.read_text())
    study.update(seeds=[0], alphas=[0.0], temperatures=[2.0], baselines={"alone": False, "ls_alpha": 0.0},
                 output=str(tmp_path / "study"), logger="wandb", wandb={"offline": True})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    output = kd_ls("study", "--config", str(tmp_path / "study.yaml"), "--jobs", "1", cwd=ROOT)
    assert noise_in(output) == {}
    assert "done    student a=0 T=2 seed=0" in output and "2/2 done, 0 failed" in output
