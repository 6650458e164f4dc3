"""Weights & Biases for kd-ls runs and studies.

Each study run is a W&B run (group = study name, job_type = teacher | student | baseline,
tags for alpha, T and seed). A teacher's checkpoint is logged as a model artifact; each of
its students records the artifact's name in its config and, when online, declares it with
`use_artifact` so W&B draws the lineage. Offline, `use_artifact` is impossible (W&B raises),
so the name in the config is the link; `wandb sync` uploads both.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from pytorch_lightning import Trainer
from pytorch_lightning.loggers import WandbLogger

if TYPE_CHECKING:
    from kd_ls.study.plan import PlannedRun
    from kd_ls.study.spec import Study

RUN_FILES = ("config.yaml", "metrics.json", "provenance.json")


class NoRun:
    """Stands in for a wandb run when W&B cannot be used at all: every call does nothing."""

    def __getattr__(self, name: str) -> "NoRun":
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> "NoRun":
        return self

    def __str__(self) -> str:
        return "no-wandb"


def is_offline(run: Any) -> bool:
    """Whether a wandb run object logs offline."""
    return bool(getattr(run, "offline", False)) or getattr(run.settings, "mode", "") in ("offline", "dryrun")


class KDWandbLogger(WandbLogger):
    """WandbLogger with W&B's grouping fields as explicit (config-file friendly) arguments.

    Args:
        group: W&B group (a study's name).
        job_type: W&B job type (teacher, student, baseline).
        tags: W&B tags.
        fields: extra config entries (role, seed, alpha, temperature) for filtering and `kd-ls compare`.
        teacher_artifact: name of the teacher checkpoint artifact this run distils from.
        checkpoint_artifact: if set, log this run's last checkpoint as a model artifact of this name.
        **kwargs: WandbLogger arguments (project, entity, offline, save_dir, name, ...).
    """

    def __init__(
        self,
        group: Optional[str] = None,
        job_type: Optional[str] = None,
        tags: Optional[list[str]] = None,
        fields: Optional[dict[str, Any]] = None,
        teacher_artifact: Optional[str] = None,
        checkpoint_artifact: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(group=group, job_type=job_type, tags=tags, **kwargs)
        self.fields, self.teacher_artifact, self.checkpoint_artifact = fields or {}, teacher_artifact, checkpoint_artifact

    @property
    def experiment(self) -> Any:
        """The wandb run; on creation it records the study fields and the teacher's artifact.

        If W&B cannot be reached or is misconfigured (no API key, wrong entity), the run
        goes on logging offline under save_dir, with a warning: the local run folder is
        complete either way, and `wandb sync` can upload the offline run later."""
        fresh = self._experiment is None
        try:
            run = super().experiment
        except Exception as err:  # noqa: BLE001 - wandb raises many kinds; none may cost the run
            if not self._offline:
                warnings.warn(f"W&B unavailable ({type(err).__name__}: {str(err).splitlines()[0]}); "
                              f"logging this run offline under {self.save_dir} (upload later with `wandb sync`)")
                self._offline = True
                self._wandb_init["mode"] = "offline"
            try:
                run = super().experiment
            except Exception as again:  # noqa: BLE001 - even offline W&B failed: go on without it
                warnings.warn(f"W&B cannot log this run at all ({type(again).__name__}); "
                              "continuing without W&B: the run folder keeps config, metrics and checkpoint")
                self._experiment = NoRun()
                return self._experiment
        if fresh and run is not None:
            extra = {**self.fields, "teacher_artifact": self.teacher_artifact}
            run.config.update({k: v for k, v in extra.items() if v is not None}, allow_val_change=True)
            if self.teacher_artifact and not is_offline(run):
                run.use_artifact(self.teacher_artifact)
        return run


def close_wandb_runs(trainer: Trainer, run_dir: str) -> None:
    """Attach the run folder's config.yaml and metrics.json to each W&B run, log a requested
    checkpoint artifact, and finish the run (so an in-process study starts the next afresh)."""
    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger) or logger._experiment is None:
            continue
        run = logger.experiment
        for name in RUN_FILES:
            if os.path.exists(os.path.join(run_dir, name)):
                run.save(os.path.join(run_dir, name), base_path=run_dir, policy="now")
        ckpt = os.path.join(run_dir, "checkpoints", "last.ckpt")
        if isinstance(logger, KDWandbLogger) and logger.checkpoint_artifact and os.path.exists(ckpt):
            import wandb

            artifact = wandb.Artifact(logger.checkpoint_artifact, type="model", metadata=logger.fields)
            artifact.add_file(ckpt)
            run.log_artifact(artifact)
        run.finish()


def artifact_name(run_id: str) -> str:
    """The W&B artifact name of a study run's checkpoint."""
    return f"ckpt-{run_id}"


def study_wandb_logger(study: "Study", run: "PlannedRun", folder: Path) -> dict[str, Any]:
    """Logger config (class_path/init_args) for one study run."""
    tags = [f"alpha={run.alpha:g}", f"seed={run.seed}"] + ([f"T={run.temperature:g}"] if run.temperature else [])
    fields = {"role": run.role, "seed": run.seed, "alpha": run.alpha, "temperature": run.temperature,
              "run_id": run.run_id, "study": study.name}
    return {
        "class_path": "kd_ls.tracking.KDWandbLogger",
        "init_args": {
            "project": study.wandb.project, "entity": study.wandb.entity, "offline": study.wandb.offline,
            "save_dir": str(folder), "name": f"{study.name}/{run.label()}", "group": study.name,
            "job_type": run.role, "tags": tags, "fields": fields,
            "teacher_artifact": f"{artifact_name(run.teacher_id)}:latest" if run.teacher_id else None,
            "checkpoint_artifact": artifact_name(run.run_id) if run.role == "teacher" else None,
        },
    }


def log_study_summary(study: "Study", study_dir: Path) -> None:
    """A W&B run of job type 'summary' carrying the results table, the verdict and the plots."""
    import wandb

    with open(study_dir / "results.csv") as f:
        rows = list(csv.reader(f))
    settings = dict(project=study.wandb.project, entity=study.wandb.entity, group=study.name, job_type="summary",
                    name=f"{study.name}/summary", dir=str(study_dir), config=study.to_dict())
    run = None
    for mode in ([] if study.wandb.offline else [None]) + ["offline"]:
        try:
            run = wandb.init(mode=mode, **settings)
            break
        except Exception as err:  # noqa: BLE001 - the summary is a convenience; the files are the record
            warnings.warn(f"W&B summary run failed ({type(err).__name__}) in mode {mode or 'online'}")
    if run is None:
        return
    payload: dict[str, Any] = {"results": wandb.Table(columns=rows[0], data=rows[1:])}
    for png in sorted((study_dir / "plots").glob("*.png")):
        payload[f"plots/{png.stem}"] = wandb.Image(str(png))
    run.log(payload)
    for name in ("verdict.md", "verdict.json", "results.csv"):
        run.save(str(study_dir / name), base_path=str(study_dir), policy="now")
    run.finish()
