"""Whole teacher/student studies: plan them and run them (resumably).

`spec` (the study file; `schema` checks its types), `plan` (its runs and their ids), `runner`
(executing them), `devices` (which worker gets which GPU), `ownership` (which study file a folder
belongs to), `session` (one `kd-ls study`: lock, ownership, declaration, rounds of seeds, report),
`progress`, `cost` (expected run costs for the time left), `dry_run`, `tracking` (W&B).
Deciding lives in kd_ls.verdict, reporting in kd_ls.report: this room only runs.
"""

from typing import Any

from kd_ls.study.spec import Study, StudyError, default_study, load_study, parse_study

# The session (which writes the report at the end) loads only when asked for, so a run's worker
# process, which imports kd_ls.study.runner, never loads plotting code.
_LAZY = {"run_study": "kd_ls.study.session", "study_lock": "kd_ls.study.session"}


def __getattr__(name: str) -> Any:
    """`run_study` and `study_lock`, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kd_ls.study' has no attribute {name!r}")

__all__ = ["Study", "StudyError", "default_study", "load_study", "parse_study", "run_study", "study_lock"]
