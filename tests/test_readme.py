"""The README's commands run as written, after its set-up.

Every command of every ```bash block of README.md is run, in order, from a scratch folder that
holds the repository's configs (so its relative paths and the runs it leaves behave as in a
checkout), through kd-ls's entry point in this process. A command that would train for long
runs with a few arguments added (fewer epochs and samples, a tiny study in place of a long
one); the set-up, network-only and GPU-only commands are skipped, each with its reason. A
command this file does not know fails the test: a README change must say here how to check it.
Also: `kd-ls --help` in the README is what kd-ls prints, and every command's --help works.
"""

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_STUDY
from kd_ls.commands.main import KD_LS_COMMANDS, LIGHTNING_COMMANDS, main, overview

README = ROOT / "README.md"
MNIST_SMALL = ["--trainer.max_epochs", "1", "--data.init_args.num_samples", "600"]
JPEG = os.environ.get("KD_LS_CIFAR10_JPEG")

# (pattern the command must match, reason) for commands that are not run here.
SKIPPED = [
    (r"^python3 -m venv ", "the set-up itself: .ci/run runs it in a fresh clone"),
    (r"^\.venv/bin/pip install ", "the set-up itself: .ci/run runs it in a fresh clone"),
    (r"^source \.venv/bin/activate", "shell state: this test runs kd-ls from the environment it runs in"),
    (r"^python -m pytest", "the test suite itself"),
    (r"^wandb login", "needs a W&B account and a network"),
    (r"^kd-ls compare --wandb ", "needs a W&B account and a network"),
    (r"^python experiments/bench/\S+ .*(cuda|--device cuda)", "GPU only"),
    (r"^kd-ls fit --config configs/fast/teacher_cifar10\.yaml --trainer\.precision bf16-mixed", "GPU only"),
    (r"^kd-ls study --config configs/fast/study_cifar10\.yaml$", "a GPU study (66 runs)"),
    (r"^python experiments/bench/gpu_suite\.py", "GPU only"),
]
if not JPEG:
    SKIPPED += [(r"KD_LS_CIFAR10_JPEG", "no JPEG CIFAR-10 here: set KD_LS_CIFAR10_JPEG (.ci/run does when it can)")]

# (pattern, arguments added) for commands that run, smaller; the first match wins.
SMALLER = [
    (r"^kd-ls fit .*--data configs/data/digits\.yaml", ["--trainer.max_epochs", "1"]),
    (r"^kd-ls fit --config configs/(teacher|student)/mnist1d\.yaml", MNIST_SMALL),
    (r"^kd-ls fit --config configs/fast/teacher_cifar10\.yaml .*ImageFolder",
     ["--trainer.max_epochs", "3", "--data.init_args.max_per_class", "20", "--data.init_args.drop_last", "false"]),
    (r"^kd-ls study$", ["--config", "default-small.yaml", "--jobs", "1"]),  # the default study's folder, 6 runs
]
AS_WRITTEN = [r"^kd-ls (test|analyze|report|compare|sync|study --config my_study\.yaml|study --new) ", r"^kd-ls --help$",
              r"^export KD_LS_CIFAR10_JPEG="]


def bash_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(" ".join(shlex.quote(w) if w != "$KD_LS_CIFAR10_JPEG" else w for w in words))
    return commands


def write_studies(folder: Path) -> None:
    """The small studies the README's study commands run: `my_study.yaml` (the README's example
    file name) and a 6-run stand-in for the default study, writing to the default study's folder."""
    tiny = yaml.safe_load(TINY_STUDY.read_text())
    small = {**tiny, "seeds": [0], "temperatures": [1]}
    (folder / "default-small.yaml").write_text(yaml.safe_dump({**small, "name": "mnist1d-default",
                                                               "output": "runs/study/mnist1d-default"}))
    (folder / "my_study.yaml").write_text(yaml.safe_dump({**small, "name": "my-study", "alphas": [0.0, 0.1],
                                                          "baselines": {"alone": True, "ls_alpha": 0.0},
                                                          "output": "runs/study/my-study"}))


def run(command: str) -> None:
    """One README command, as `kd-ls` runs it (an `export` sets the variable)."""
    if command.startswith("export KD_LS_CIFAR10_JPEG="):
        return  # the README's example path stands for the reader's; here the variable is set already
    words = [os.path.expandvars(w) for w in shlex.split(command)]
    extra = next((args for pattern, args in SMALLER if re.search(pattern, command)), None)
    if extra is None:
        assert any(re.search(p, command) for p in AS_WRITTEN), f"README command not covered by {__file__}: {command}"
        extra = []
    try:
        main(words[1:] + extra)
    except SystemExit as stop:
        assert stop.code in (0, None), f"`{command}` exited with {stop.code}"


def test_readme_commands_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    write_studies(tmp_path)
    monkeypatch.chdir(tmp_path)
    ran, skipped = [], []
    for command in bash_commands(README.read_text()):
        reason = next((why for pattern, why in SKIPPED if re.search(pattern, command)), None)
        if reason:
            skipped.append((command, reason))
            continue
        run(command)
        ran.append(command)
    output = capsys.readouterr()
    assert len(ran) >= 12, ran
    assert "kd-ls: error" not in output.err
    assert (tmp_path / "runs/study/mnist1d-default/report.html").is_file()
    assert "## Müller's protocol" in output.out  # kd-ls compare printed its tables


def test_readme_help_is_what_kd_ls_prints(capsys):
    shown = re.search(r"```\n(kd-ls \S+: do label-smoothed.*?)```", README.read_text(), re.S)
    assert shown, "README shows `kd-ls --help`'s output"
    main(["--help"])
    assert capsys.readouterr().out.strip() == shown.group(1).strip() == overview().strip()


@pytest.mark.parametrize("command", [*LIGHTNING_COMMANDS, *KD_LS_COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out.lower()
