"""kd-ls's W&B logger: Lightning's WandbLogger with config-file friendly grouping fields,
the teacher-artifact link, and a fallback to offline logging when W&B cannot be reached.

A teacher's checkpoint is logged as a model artifact; each of its students records the
artifact's name in its config and, when online, declares it with `use_artifact` so W&B draws
the lineage. Offline, `use_artifact` is impossible (W&B raises), so the name in the config is
the link; `wandb sync` uploads both.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

from pytorch_lightning import Trainer
from pytorch_lightning.loggers import WandbLogger

from kd_ls.layout import RunLayout
from kd_ls.lightning.internals import set_wandb_run, switch_wandb_offline, wandb_is_offline, wandb_run_if_started


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
        fresh = wandb_run_if_started(self) is None
        try:
            run = super().experiment
        except Exception as err:  # noqa: BLE001 - wandb raises many kinds; none may cost the run
            if not wandb_is_offline(self):
                warnings.warn(f"W&B unavailable ({type(err).__name__}: {str(err).splitlines()[0]}); "
                              f"logging this run offline under {self.save_dir} (upload later with `wandb sync`)")
                switch_wandb_offline(self)
            try:
                run = super().experiment
            except Exception as again:  # noqa: BLE001 - even offline W&B failed: go on without it
                warnings.warn(f"W&B cannot log this run at all ({type(again).__name__}); "
                              "continuing without W&B: the run folder keeps config, metrics and checkpoint")
                set_wandb_run(self, NoRun())
                return wandb_run_if_started(self)
        if fresh and run is not None:
            extra = {**self.fields, "teacher_artifact": self.teacher_artifact}
            run.config.update({k: v for k, v in extra.items() if v is not None}, allow_val_change=True)
            if self.teacher_artifact and not is_offline(run):
                run.use_artifact(self.teacher_artifact)
        return run


def close_wandb_runs(trainer: Trainer, run_dir: str) -> None:
    """Attach the run folder's config.yaml and metrics.json to each W&B run, log a requested
    checkpoint artifact, and finish the run (so an in-process study starts the next afresh)."""
    layout = RunLayout.of(run_dir)
    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger) or wandb_run_if_started(logger) is None:
            continue
        run = logger.experiment
        for path in (layout.config, layout.metrics, layout.provenance):
            if path.exists():
                run.save(str(path), base_path=str(layout.root), policy="now")
        ckpt = layout.last_checkpoint
        if isinstance(logger, KDWandbLogger) and logger.checkpoint_artifact and ckpt.exists():
            import wandb

            artifact = wandb.Artifact(logger.checkpoint_artifact, type="model", metadata=logger.fields)
            artifact.add_file(str(ckpt))
            run.log_artifact(artifact)
        run.finish()
