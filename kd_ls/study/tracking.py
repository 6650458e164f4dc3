"""W&B for whole studies: one W&B run per study run (grouped, tagged, linked to its
teacher's checkpoint artifact) and a summary run carrying the results, verdict and plots."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

from kd_ls.layout import StudyLayout
from kd_ls.study.plan import PlannedRun
from kd_ls.study.spec import Study


def artifact_name(run_id: str) -> str:
    """The W&B artifact name of a study run's checkpoint."""
    return f"ckpt-{run_id}"


def study_wandb_logger(study: Study, run: PlannedRun, folder: Path) -> dict[str, Any]:
    """Logger config (class_path/init_args) for one study run."""
    tags = [f"alpha={run.alpha:g}", f"seed={run.seed}"] + ([f"T={run.temperature:g}"] if run.temperature else [])
    if run.teacher_alpha is not None:
        tags.append(f"teacher_alpha={run.teacher_alpha:g}")
    fields = {"role": run.role, "seed": run.seed, "alpha": run.alpha, "teacher_alpha": run.teacher_alpha,
              "temperature": run.temperature, "run_id": run.run_id, "study": study.name}
    return {
        "class_path": "kd_ls.lightning.wandb_logger.KDWandbLogger",
        "init_args": {
            "project": study.wandb.project, "entity": study.wandb.entity, "offline": study.wandb.offline,
            "save_dir": str(folder), "name": f"{study.name}/{run.label()}", "group": study.name,
            "job_type": run.role, "tags": tags, "fields": fields,
            "teacher_artifact": f"{artifact_name(run.teacher_id)}:latest" if run.teacher_id else None,
            "checkpoint_artifact": artifact_name(run.run_id) if run.role == "teacher" else None,
        },
    }


def log_study_summary(study: Study, study_dir: Path) -> None:
    """A W&B run of job type 'summary' carrying the results table, the verdict and the plots."""
    import wandb

    layout = StudyLayout.of(study_dir)
    with open(layout.results) as f:
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
    for png in sorted(layout.plots.glob("*.png")):
        payload[f"plots/{png.stem}"] = wandb.Image(str(png))
    run.log(payload)
    for path in (layout.verdict_md, layout.verdict_json, layout.results):
        run.save(str(path), base_path=str(study_dir), policy="now")
    run.finish()
