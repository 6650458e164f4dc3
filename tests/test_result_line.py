"""`kd-ls fit`, `validate` and `test` end with one line of the metrics that matter (accuracy,
NLL, ECE) and where the rest are, the same numbers as metrics.json. A real tiny fit."""

import json
import re

from conftest import TEACHER_CONFIG, fit
from kd_ls.commands.main import main

LINE = re.compile(r"^(test|val): acc (\d+\.\d\d)%  nll (\d+\.\d{3})  ece (\d+\.\d)%  \((.+metrics\.json)\)$")


def last_line(capsys) -> re.Match:
    out = capsys.readouterr().out.strip().splitlines()
    match = LINE.match(out[-1])
    assert match, out[-1]
    return match


def check(match: re.Match, split: str) -> None:
    metrics = json.loads(open(match.group(5)).read())
    assert match.group(1) == split
    assert float(match.group(2)) == round(100 * metrics[f"{split}/acc"], 2)
    assert float(match.group(3)) == round(metrics[f"{split}/nll"], 3)
    assert float(match.group(4)) == round(100 * metrics[f"{split}/ece"], 1)


def test_fit_validate_and_test_end_with_their_metrics(tmp_path, capsys):
    fit(TEACHER_CONFIG, tmp_path)
    match = last_line(capsys)
    assert match.group(5) == str(tmp_path / "metrics.json")
    check(match, "test")
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    for command, split in (("validate", "val"), ("test", "test")):
        main([command, "--config", str(tmp_path / "config.yaml"), "--ckpt_path", ckpt])
        match = last_line(capsys)
        assert "evaluations" in match.group(5)
        check(match, split)
