"""A typo gets the answer, not only the list: "did you mean X?" for a mistyped key, option,
model, dataset, loss or convention name, in the study file and on the command line."""

import pytest
import yaml

from conftest import TEACHER_CONFIG, TINY_STUDY
from kd_ls.commands.main import main
from kd_ls.losses import check_convention
from kd_ls.models import create_model
from kd_ls.names import did_you_mean


def test_did_you_mean_suggests_only_close_names():
    assert did_you_mean("temperatutes", ["alphas", "temperatures"]) == "; did you mean temperatures?"
    assert did_you_mean("Uniform", ["uniform", "others"]) == "; did you mean uniform?"  # case aside
    assert did_you_mean("zebra", ["alphas", "temperatures"]) == ""  # nothing close: no guess
    assert did_you_mean("alphas", ["alphas"]) == ""  # an allowed name needs no suggestion


def one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("kd-ls: error: "), err
    return err[0]


STUDY_TYPOS = [
    ({"temperatutes": [1, 4]}, "study.temperatutes: unknown key", "did you mean temperatures?"),
    ({"teacher": {"model": "conv1d", "epocs": 2}}, "study.teacher.epocs: unknown key", "did you mean epochs?"),
    ({"teacher": {"model": "conv1dd"}}, "study.teacher.model: model name 'conv1dd' is unknown", "did you mean conv1d?"),
    ({"dataset": {"name": "mnist1", "options": {}}}, "study.dataset.name: 'mnist1' is unknown", "did you mean mnist1d?"),
    ({"convention": "uniforn"}, "study.convention: must be one of", "did you mean uniform?"),
    ({"logger": "wandv"}, "study.logger: must be one of", "did you mean wandb?"),
    ({"losses": ["dkdd"]}, "study.losses[0]: must be one of", "did you mean dkd?"),
    ({"trainer": {"max_epoch": 3}}, "study.trainer.max_epoch: not a Lightning Trainer argument", "did you mean max_epochs?"),
]


@pytest.mark.parametrize("change, field, hint", STUDY_TYPOS)
def test_a_typo_in_the_study_file_gets_a_suggestion(tmp_path, capsys, change, field, hint):
    raw = {**yaml.safe_load(TINY_STUDY.read_text()), "output": str(tmp_path / "out")}
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    line = one_line_error(capsys, ["study", "--config", str(path), "--dry-run"])
    assert field in line and hint in line, line
    assert not (tmp_path / "out").exists()


CLI_TYPOS = [
    (["stuyd"], "unknown command 'stuyd'", "did you mean study?"),
    (["study", "--jbos", "2"], "unrecognized arguments: --jbos 2", "did you mean --jobs?"),
    (["study", "--executor", "slrum"], "invalid choice: 'slrum'", "did you mean slurm?"),
    (["analyze", "x.ckpt", "--split", "tset"], "invalid choice: 'tset'", "did you mean test?"),
    (["fit", "--config", str(TEACHER_CONFIG), "--trainer.max_epochz", "3"], "unrecognized arguments: --trainer.max_epochz",
     "did you mean max_epochs?"),
    (["fit", "--config", str(TEACHER_CONFIG), "--model.init_args.nett", "mlp"], "model: Option 'nett' is not accepted",
     "did you mean net?"),
]


@pytest.mark.parametrize("argv, problem, hint", CLI_TYPOS)
def test_a_typo_on_the_command_line_gets_a_suggestion(capsys, argv, problem, hint):
    line = one_line_error(capsys, argv)
    assert problem in line and hint in line, line


def test_library_names_get_suggestions():
    with pytest.raises(ValueError, match="did you mean uniform"):
        check_convention("unifrm")
    with pytest.raises(ValueError, match="did you mean alexnet_cifar"):
        create_model("alexnet_cifra", 10, (3, 32, 32))
