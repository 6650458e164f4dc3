"""Whole teacher/student studies: plan, run (resumably), and report a verdict.

`spec` (the study file), `plan` (its runs and their ids), `runner` (executing them),
`session` (one `kd-ls study`: lock, manifest, run, report), `report` (results.csv, verdict,
plots), `cells` / `stats` / `verdict` / `render` (the verdict from the rows), `progress`,
`tracking` (W&B), `compare` (several studies).
"""

from kd_ls.study.report import write_report
from kd_ls.study.session import run_study, study_lock
from kd_ls.study.spec import Study, StudyError, default_study, load_study, parse_study

__all__ = ["Study", "StudyError", "default_study", "load_study", "parse_study", "run_study", "study_lock",
           "write_report"]
