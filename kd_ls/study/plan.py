"""From a Study to its runs: a small graph (teachers first, each student after its teacher),
each run a complete `kd-ls fit` config named by the hash of exactly what determines its result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from kd_ls import catalog
from kd_ls.loss_options import loss_settings
from kd_ls.study.spec import Recipe, Study

TEACHER, STUDENT, BASELINE = "teacher", "student", "baseline"
TEACHER_CLASS, STUDENT_CLASS = "kd_ls.lightning.Teacher", "kd_ls.lightning.Student"


@dataclass
class PlannedRun:
    """One training run of a study.

    `alpha` is the run's own label smoothing (0 for distilled students); `teacher_alpha` is the
    smoothing of a student's teacher (None for teachers and baselines); `temperature` and
    `loss` (the distillation loss, kd_ls.losses) are set for students only.
    """

    run_id: str
    role: str
    seed: int
    alpha: float
    teacher_alpha: Optional[float]
    temperature: Optional[float]
    teacher_id: Optional[str]
    config: dict[str, Any]
    loss: Optional[str] = "kd"

    def label(self) -> str:
        """Short human description, e.g. 'student a=0.1 T=4 seed=0' (a: the teacher's alpha),
        'student a=0.1 T=4 lskd seed=0' for a loss other than kd."""
        text = f"{self.role} a={self.alpha if self.teacher_alpha is None else self.teacher_alpha:g}"
        if self.temperature is not None:
            text += f" T={self.temperature:g}"
        if self.loss not in (None, "kd"):
            text += f" {self.loss}"
        return f"{text} seed={self.seed}"


def config_hash(obj: Any) -> str:
    """First 12 hex digits of the SHA-256 of canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


# Settings that change speed, never results (each tested bit-identical on CPU), so they stay
# out of run ids: changing them reuses finished runs.
SPEED_ONLY = ("steps_per_call", "teacher_cache")


def run_identity(role: str, teacher_id: Optional[str], threads: int, config: dict[str, Any]) -> dict[str, Any]:
    """Exactly what determines a run's numbers: its role, teacher (by run id, standing in for
    the checkpoint), seed, CPU threads, trainer, model and data settings. Class paths are
    left out (the role says which module), so moving code never renames runs."""
    model = {k: v for k, v in config["model"]["init_args"].items() if k not in SPEED_ONLY}
    data = {k: v for k, v in config["data"]["init_args"].items() if k not in SPEED_ONLY}
    return {"role": role, "teacher": teacher_id, "seed": config["seed_everything"], "threads": threads,
            "trainer": config["trainer"], "model": model, "data": {"dataset": config["data"]["class_path"], **data}}


def _config(study: Study, recipe: Recipe, seed: int, class_path: str, model_args: dict) -> dict[str, Any]:
    return {
        "seed_everything": seed,
        "trainer": {"max_epochs": recipe.epochs, **study.trainer},
        "model": {"class_path": class_path, "init_args": {**recipe.module_args(), **model_args}},
        "data": {"class_path": catalog.dataset_class_path(study.dataset.name),
                 "init_args": {**study.dataset.options, **recipe.data_options, "batch_size": recipe.batch_size}},
    }


def _make(study: Study, role: str, seed: int, alpha: float, teacher_alpha: Optional[float],
          temperature: Optional[float], teacher_id: Optional[str], config: dict[str, Any],
          loss: Optional[str] = None) -> PlannedRun:
    identity = run_identity(role, teacher_id, study.threads, config)
    return PlannedRun(f"{role}-{config_hash(identity)}", role, seed, alpha, teacher_alpha, temperature, teacher_id,
                      config, loss)


def loss_args(study: Study, loss: str) -> dict[str, Any]:
    """The Student arguments that select `loss`: none for kd, so that the runs of studies from
    before the loss axis keep their ids; else the loss and every option, defaults filled in (an
    option written out at its default names the same run as one left out)."""
    return {} if loss == "kd" else {"loss": loss, **loss_settings(loss, study.loss_options.get(loss, {}))}


def use_teacher_cache(study: Study) -> bool:
    """The study's teacher_cache, or (auto) whether caching is cheaper than the online teacher.

    The cache costs one teacher pass per augmentation view over the training data; the online
    teacher costs one pass per student epoch, for every student of that teacher."""
    if study.teacher_cache is not None:
        return study.teacher_cache
    views = student_views(study)
    students_per_teacher = max(len(study.temperatures), len(study.ls_temperatures or [])) * len(study.losses)
    return views <= students_per_teacher * study.student.epochs


def student_views(study: Study) -> int:
    """How many augmentation views the students' data has: the catalog's for a data setting it
    built, else the data module's (built, not loaded)."""
    options = {**study.dataset.options, **study.student.data_options}
    facts = catalog.data_facts(study.dataset.name, options)
    if facts is not None:
        return facts["num_views"]
    from kd_ls.data import DATASETS

    return DATASETS[study.dataset.name](**options).num_views


def student_temperatures(study: Study, alpha: float) -> list[float]:
    """The temperatures at which the teacher of smoothing `alpha` is distilled."""
    return study.temperatures if alpha == 0 or study.ls_temperatures is None else study.ls_temperatures


def plan_study(study: Study) -> list[PlannedRun]:
    """Every run of the study, teachers before the students that depend on them."""
    teachers, students, baselines = [], [], []
    cache = use_teacher_cache(study)
    for seed in study.seeds:
        for alpha in study.alphas:
            teacher_args = {"alpha": alpha, "convention": study.convention}
            teacher = _make(study, TEACHER, seed, alpha, None, None, None,
                            _config(study, study.teacher, seed, TEACHER_CLASS, teacher_args))
            teachers.append(teacher)
            for t in student_temperatures(study, alpha):
                for loss in study.losses:
                    student_args = {"temperature": t, "beta": study.beta, "soften_student": study.soften_student,
                                    "teacher_cache": cache, **loss_args(study, loss)}
                    config = _config(study, study.student, seed, STUDENT_CLASS, student_args)
                    students.append(_make(study, STUDENT, seed, 0.0, alpha, t, teacher.run_id, config, loss))
        baseline_alphas = ([0.0] if study.baselines.alone else []) + (
            [study.baselines.ls_alpha] if study.baselines.ls_alpha > 0 else [])
        for alpha in baseline_alphas:
            config = _config(study, study.student, seed, STUDENT_CLASS, {"alpha": alpha, "convention": study.convention})
            baselines.append(_make(study, BASELINE, seed, alpha, None, None, None, config))
    return teachers + baselines + students
