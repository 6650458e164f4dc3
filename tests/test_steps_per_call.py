"""Several optimizer steps per Lightning call (model.steps_per_call): the same run, faster."""

import json

import torch

from conftest import STUDENT_CONFIG, TEACHER_CONFIG, fit, tiny
from kd_ls.data import create_datamodule
from kd_ls.data.base import TensorBatches
from kd_ls.study.plan import plan_study

DIGITS_TEACHER = TEACHER_CONFIG.parent / "digits.yaml"


def checkpoint(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def test_grouped_steps_give_the_same_student(tiny_teacher, tmp_path):
    """1 step per call (Lightning's automatic optimization), 5 (a short last group) and 64
    (one call per epoch) train the same student bit for bit, cached teacher logits included."""
    ckpt = str(tiny_teacher / "checkpoints" / "last.ckpt")
    runs = {k: fit(STUDENT_CONFIG, tmp_path / str(k), "--model.init_args.teacher_ckpt", ckpt,
                   "--model.init_args.teacher_cache", "true", "--model.init_args.steps_per_call", str(k))
            for k in (1, 5, 64)}
    assert runs[1] == runs[5] == runs[64]
    states = [checkpoint(tmp_path / str(k)) for k in (1, 5, 64)]
    assert {s["global_step"] for s in states} == {4 * 45}  # 4 epochs x ceil(1440 / 32) optimizer steps
    assert {s["lr_schedulers"][0]["last_epoch"] for s in states} == {4 * 45}
    for key, value in states[0]["state_dict"].items():
        assert all(torch.equal(value, s["state_dict"][key]) for s in states[1:]), key


def test_grouped_steps_draw_the_same_augmentation(tmp_path):
    """With random crops and flips, every batch still gets its own draws in the same order."""
    from kd_ls.commands.main import main

    def run(folder: str, steps: str) -> dict:
        main(["fit", "--config", str(DIGITS_TEACHER), "--trainer.default_root_dir", str(tmp_path / folder),
              "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", "--data.init_args.augment",
              "true", "--model.init_args.steps_per_call", steps])
        return json.loads((tmp_path / folder / "metrics.json").read_text())

    assert run("one", "1") == run("grouped", "3")


def test_max_steps_stops_inside_a_group(tmp_path):
    fit(TEACHER_CONFIG, tmp_path, "--trainer.max_steps", "7", "--trainer.max_epochs", "-1")
    state = checkpoint(tmp_path)
    assert state["global_step"] == 7 and state["lr_schedulers"][0]["last_epoch"] == 7
    assert state["lr_schedulers"][0]["_last_lr"] == [0.0]  # the cosine schedule spans exactly 7 steps
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.0


def test_limit_train_batches_counts_calls(tmp_path):
    fit(TEACHER_CONFIG, tmp_path, "--trainer.limit_train_batches", "2", "--model.init_args.steps_per_call", "4",
        "--trainer.max_epochs", "2")
    state = checkpoint(tmp_path)
    assert state["global_step"] == 2 * 2 * 4  # epochs x calls x steps per call
    assert state["lr_schedulers"][0]["_last_lr"] == [0.0]


def test_groups_are_the_ungrouped_batches():
    dm = create_datamodule("digits", batch_size=50)
    dm.setup()
    x, y = dm.splits["train"]
    for drop_last in (False, True):
        for rank in (0, 1):
            plain = TensorBatches(x, y, 50, True, seed=3, drop_last=drop_last, rank=rank, world_size=2)
            grouped = TensorBatches(x, y, 50, True, seed=3, drop_last=drop_last, rank=rank, world_size=2,
                                    steps_per_call=4)
            batches, groups = list(plain), list(grouped)
            assert grouped.num_batches == len(plain) and len(groups) == -(-len(plain) // 4)
            for i, group in enumerate(groups):
                assert len(group) == len(batches[4 * i : 4 * i + 4])
                for batch, expected in zip(group, batches[4 * i : 4 * i + 4]):
                    assert all(torch.equal(t, e) for t, e in zip(batch, expected))


def test_steps_per_call_is_not_part_of_a_run_id(tmp_path):
    study = tiny(tmp_path)
    grouped = tiny(tmp_path)
    grouped.student.steps_per_call = grouped.teacher.steps_per_call = 16
    assert [r.run_id for r in plan_study(study)] == [r.run_id for r in plan_study(grouped)]
    assert all(r.config["model"]["init_args"]["steps_per_call"] == 16 for r in plan_study(grouped))
