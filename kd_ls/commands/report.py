"""`kd-ls report`: rebuild a study's tables, verdict and plots from its stored runs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kd_ls.commands.errors import ArgumentParser


def report_command(argv: Sequence[str]) -> int:
    """kd-ls report STUDY_DIR: rebuild results.csv, verdict and plots from stored runs.

    Returns 0 for a complete study, 1 when some planned runs have not finished (the report
    says it is incomplete)."""
    parser = ArgumentParser(prog="kd-ls report", description="Rebuild a study's results.csv, verdict and plots "
                                                             "from its stored runs; trains nothing.")
    parser.add_argument("study_dir", metavar="STUDY_DIR")
    study_dir = Path(parser.parse_args(argv).study_dir)
    from kd_ls.commands.study import incomplete_status, print_verdict
    from kd_ls.layout import StudyLayout
    from kd_ls.report.write import write_report

    if not StudyLayout.of(study_dir).manifest.is_file():
        raise FileNotFoundError(f"STUDY_DIR: '{study_dir}' holds no study.json (not a kd-ls study folder)")
    verdict = write_report(study_dir)
    print_verdict(verdict, study_dir)
    return incomplete_status(verdict)
