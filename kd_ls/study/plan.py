"""From a Study to its runs: a small graph (teachers first, each student after its teacher),
each run a complete `kd-ls fit` config named by the hash of what determines its result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from kd_ls.data import DATASETS
from kd_ls.study.spec import Recipe, Study

TEACHER, STUDENT, BASELINE = "teacher", "student", "baseline"


@dataclass
class PlannedRun:
    """One training run of a study.

    `alpha` is the teacher's smoothing for teachers and students (their teacher's), and the
    student's own smoothing for baselines; `temperature` is set for students only.
    """

    run_id: str
    role: str
    seed: int
    alpha: float
    temperature: Optional[float]
    teacher_id: Optional[str]
    config: dict[str, Any]

    def label(self) -> str:
        """Short human description, e.g. 'student a=0.1 T=4 seed=0'."""
        text = f"{self.role} a={self.alpha:g}"
        if self.temperature is not None:
            text += f" T={self.temperature:g}"
        return f"{text} seed={self.seed}"


def config_hash(obj: Any) -> str:
    """First 12 hex digits of the SHA-256 of canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _model_args(recipe: Recipe) -> dict[str, Any]:
    return {
        "net": recipe.model, "net_kwargs": recipe.model_kwargs or None, "optimizer": recipe.optimizer,
        "lr": recipe.lr, "momentum": recipe.momentum, "nesterov": recipe.nesterov,
        "weight_decay": recipe.weight_decay, "schedule": recipe.schedule, "milestones": recipe.milestones,
        "gamma": recipe.gamma, "warmup_epochs": recipe.warmup_epochs,
        # Speed switches only when on, so existing studies keep their run ids (and finished runs).
        **{k: True for k in ("channels_last", "compile") if getattr(recipe, k)},
        **({"steps_per_call": recipe.steps_per_call} if recipe.steps_per_call != 1 else {}),
    }


def _base_config(study: Study, recipe: Recipe, seed: int, class_path: str, model_args: dict) -> dict[str, Any]:
    data_cls = DATASETS[study.dataset.name]
    return {
        "seed_everything": seed,
        "trainer": {"max_epochs": recipe.epochs, **study.trainer},
        "model": {"class_path": class_path, "init_args": {**_model_args(recipe), **model_args}},
        "data": {"class_path": f"{data_cls.__module__}.{data_cls.__name__}",
                 "init_args": {**study.dataset.options, "batch_size": recipe.batch_size}},
    }


def _make(role: str, seed: int, alpha: float, temperature: Optional[float], teacher_id: Optional[str],
          config: dict[str, Any]) -> PlannedRun:
    # steps_per_call changes speed, never results (tested), so it stays out of the run id and
    # changing it reuses finished runs. The teacher's id stands in for its checkpoint path,
    # which is only known per study folder.
    model_args = {k: v for k, v in config["model"]["init_args"].items() if k != "steps_per_call"}
    identity = {**config, "model": {**config["model"], "init_args": model_args}}
    run_id = f"{role}-{config_hash({'role': role, 'teacher': teacher_id, 'config': identity})}"
    return PlannedRun(run_id, role, seed, alpha, temperature, teacher_id, config)


def use_teacher_cache(study: Study) -> bool:
    """The study's teacher_cache, or (auto) whether caching is cheaper than the online teacher.

    The cache costs one teacher pass per augmentation view over the training data; the online
    teacher costs one pass per student epoch, for every student of that teacher."""
    if study.teacher_cache is not None:
        return study.teacher_cache
    views = DATASETS[study.dataset.name](**study.dataset.options).num_views
    students_per_teacher = max(len(study.temperatures), len(study.ls_temperatures or []))
    return views <= students_per_teacher * study.student.epochs


def plan_study(study: Study) -> list[PlannedRun]:
    """Every run of the study, teachers before the students that depend on them."""
    lit = "kd_ls.lit."
    teachers, students, baselines = [], [], []
    cache = use_teacher_cache(study)
    for seed in study.seeds:
        for alpha in study.alphas:
            teacher_args = {"alpha": alpha, "convention": study.convention,
                            "report_temperatures": list(study.temperatures)}
            teacher = _make(TEACHER, seed, alpha, None, None,
                            _base_config(study, study.teacher, seed, lit + "Teacher", teacher_args))
            teachers.append(teacher)
            for t in study.temperatures if alpha == 0 or study.ls_temperatures is None else study.ls_temperatures:
                student_args = {"temperature": t, "beta": study.beta, "soften_student": study.soften_student,
                                "teacher_cache": cache}
                config = _base_config(study, study.student, seed, lit + "Student", student_args)
                students.append(_make(STUDENT, seed, alpha, t, teacher.run_id, config))
        baseline_alphas = ([0.0] if study.baselines.alone else []) + (
            [study.baselines.ls_alpha] if study.baselines.ls_alpha > 0 else [])
        for alpha in baseline_alphas:
            config = _base_config(study, study.student, seed, lit + "Student", {"alpha": alpha, "convention": study.convention})
            baselines.append(_make(BASELINE, seed, alpha, None, None, config))
    return teachers + baselines + students


def checkpoint_path(study_dir: Path, run_id: str) -> Path:
    """Where a run's last-epoch checkpoint lands."""
    return study_dir / "runs" / run_id / "checkpoints" / "last.ckpt"
