"""kd-ls's W&B logger: Lightning's WandbLogger with config-file friendly grouping fields,
the teacher-artifact link, and a fallback to offline logging when W&B cannot be reached.

A teacher's checkpoint is logged as a model artifact; each of its students records the
artifact's name in its config and, when online, declares it with `use_artifact` so W&B draws
the lineage. Offline, `use_artifact` is impossible (W&B raises), so the name in the config is
the link; `kd-ls sync` (`wandb sync`) uploads both.

A run of a study (`study_dir` set) keeps W&B's artifact staging inside the study folder, and
when it finds W&B unreachable it leaves a mark there: the study's later runs log offline at
once instead of each waiting out W&B's connection timeout.
"""

from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from pytorch_lightning import Trainer
from pytorch_lightning.loggers import WandbLogger

from kd_ls.layout import RunLayout, StudyLayout
from kd_ls.lightning.internals import (set_wandb_run, switch_wandb_offline, wandb_init_args, wandb_is_offline,
                                       wandb_run_if_started)

# Where a W&B run holds the kd-ls run folder's own files (config.yaml, metrics.json, provenance.json).
RUN_FILES = "kd-ls"


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
        study_dir: the study folder of a study's run (artifact staging and the unreachable mark live there).
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
        study_dir: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(group=group, job_type=job_type, tags=tags, **kwargs)
        self.fields, self.teacher_artifact, self.checkpoint_artifact = fields or {}, teacher_artifact, checkpoint_artifact
        self.study = StudyLayout.of(study_dir) if study_dir else None
        init = wandb_init_args(self)
        # Lightning 2.6 always passes `anonymous`, which wandb 0.31 ignores with a warning per run.
        init.pop("anonymous", None)
        if self.study is not None:  # W&B's files in the study's one W&B folder; save_dir (Lightning's) stays
            init["dir"] = str(self.study.wandb_dir)

    @property
    def experiment(self) -> Any:
        """The wandb run; on creation it records the study fields and the teacher's artifact.

        If W&B cannot be reached or is misconfigured (no API key, wrong entity), the run
        goes on logging offline under save_dir, with a warning: the local run folder is
        complete either way, and `kd-ls sync` can upload the offline run later. In a study,
        the first such failure marks the study, and its later runs go offline at once."""
        fresh = wandb_run_if_started(self) is None
        if fresh and self.study is not None and self.study.wandb_unreachable.exists() and not wandb_is_offline(self):
            switch_wandb_offline(self)  # an earlier run of this study warned already
        try:
            run = super().experiment
        except Exception as err:  # noqa: BLE001 - wandb raises many kinds; none may cost the run
            if not wandb_is_offline(self):
                self.warn_offline(err)
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

    def warn_offline(self, err: BaseException) -> None:
        """The one warning of a W&B failure: what failed, where the runs go, how to upload them."""
        reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        if self.study is None:
            warnings.warn(f"W&B unavailable ({reason}); logging this run offline under {self.save_dir} "
                          f"(upload it later with `kd-ls sync {self.save_dir}`)")
            return
        self.study.wandb.mkdir(parents=True, exist_ok=True)
        self.study.wandb_unreachable.write_text(f"{reason}\n")
        warnings.warn(f"W&B unavailable ({reason}); logging this run and the study's remaining runs offline under "
                      f"{self.study.wandb} (upload them later with `kd-ls sync {self.study.root}`)")


@contextmanager
def artifact_staging(folder: Optional[Path]) -> Iterator[None]:
    """Stage W&B artifact files (copies of the checkpoints until they are uploaded) in `folder`
    instead of W&B's per-user data folder, unless the user chose one (WANDB_DATA_DIR): a study's
    offline runs then hold everything `kd-ls sync` uploads. W&B reads the variable when a file
    is added, so it is set just for that."""
    if folder is None or "WANDB_DATA_DIR" in os.environ:
        yield
        return
    os.environ["WANDB_DATA_DIR"] = str(folder)
    try:
        yield
    finally:
        del os.environ["WANDB_DATA_DIR"]


def close_wandb_runs(trainer: Trainer, run_dir: str) -> None:
    """Attach the run folder's config.yaml, metrics.json and provenance.json to each W&B run, log
    a requested checkpoint artifact, and finish the run (so an in-process study starts the next
    afresh)."""
    layout = RunLayout.of(run_dir)
    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger) or wandb_run_if_started(logger) is None:
            continue
        run = logger.experiment
        if isinstance(run, NoRun):
            continue
        save_files(run, [layout.config, layout.metrics, layout.provenance])
        ckpt = layout.last_checkpoint
        if isinstance(logger, KDWandbLogger) and logger.checkpoint_artifact and ckpt.exists():
            import wandb

            artifact = wandb.Artifact(logger.checkpoint_artifact, type="model", metadata=logger.fields)
            with artifact_staging(logger.study.wandb_staging if logger.study else None):
                # Students only name the artifact (lineage); nothing reads it back through W&B's cache.
                artifact.add_file(str(ckpt), skip_cache=True)
                run.log_artifact(artifact)
        run.finish()


def save_files(run: Any, paths: list[Path]) -> None:
    """Upload these files with the run, as RUN_FILES/<name> (W&B's own config.yaml is another
    file): copied into the run's files folder first, so the run holds them even if the source
    moves before an offline run is synced (W&B would symlink them, with a warning per call)."""
    files = Path(run.dir)
    (files / RUN_FILES).mkdir(exist_ok=True)
    for path in paths:
        if path.exists():
            shutil.copy2(path, files / RUN_FILES / path.name)
            run.save(str(files / RUN_FILES / path.name), base_path=str(files), policy="now")
