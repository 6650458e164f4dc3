"""Whole teacher/student studies: plan, run (resumably), and report a verdict.

Running: `spec` (the study file), `plan` (its runs and their ids), `runner` (executing them),
`devices` (which worker gets which GPU), `session` (one `kd-ls study`: lock, manifest, run,
report), `progress`, `cost` (expected run costs for the time left), `dry_run`, `tracking` (W&B).
Reporting: `report` (results.csv, verdict, plots, report.html), `cells` / `stats` / `family`
(paired cells, intervals, family-wise control), `matched` (teacher accuracy held equal),
`mechanism` (teacher measures against student gains), `verdict` / `sentences` / `render`
(the verdict and its words), `figures`, `report_page`, `compare` (several studies).
"""

from typing import Any

from kd_ls.study.spec import Study, StudyError, default_study, load_study, parse_study

# The report side (verdict, plots) loads only when asked for, so a run's worker process,
# which imports kd_ls.study.runner, never loads plotting code.
_LAZY = {"write_report": "kd_ls.study.report", "run_study": "kd_ls.study.session", "study_lock": "kd_ls.study.session"}


def __getattr__(name: str) -> Any:
    """`run_study`, `study_lock` and `write_report`, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kd_ls.study' has no attribute {name!r}")

__all__ = ["Study", "StudyError", "default_study", "load_study", "parse_study", "run_study", "study_lock",
           "write_report"]
