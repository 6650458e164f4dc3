"""Whole teacher/student studies: plan, run (resumably), and report a verdict."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kd_ls import __version__
from kd_ls.io import atomic_write_json
from kd_ls.study.plan import plan_study
from kd_ls.study.progress import StudyProgress
from kd_ls.study.report import write_report
from kd_ls.study.runner import execute_study
from kd_ls.study.spec import Study, StudyError, default_study, load_study, parse_study


def prepare_folder(study: Study) -> Path:
    """Create the study folder and write study.json (the spec and its planned runs)."""
    study_dir = Path(study.output)
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        probe = study_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise StudyError(f"study.output: cannot write to '{study_dir}' ({err.strerror})") from None
    runs = [dataclasses.asdict(r) for r in plan_study(study)]
    atomic_write_json(study_dir / "study.json", {"kd_ls_version": __version__, "study": study.to_dict(), "runs": runs})
    return study_dir


def run_study(study: Study, jobs: int = 1, progress: bool = True) -> dict[str, Any]:
    """Run every unfinished run of `study`, then write and return its verdict."""
    study_dir = prepare_folder(study)
    with StudyProgress(len(plan_study(study)), enabled=progress) as display:
        execute_study(study, study_dir, jobs=jobs, on_event=display.event)
    verdict = write_report(study_dir)
    if study.logger == "wandb":
        from kd_ls.tracking import log_study_summary

        log_study_summary(study, study_dir)
    return verdict


__all__ = ["Study", "StudyError", "default_study", "load_study", "parse_study", "run_study", "write_report"]
