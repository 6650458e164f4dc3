"""A study with worker processes writes its report in a worker (which has torch, Lightning and the
data loaded); the files are the ones `kd-ls report` writes in its own process, bit for bit, since
both compute on the study's CPU threads."""

import shutil

from kd_ls.report.write import write_report

OUTPUTS = ("results.csv", "verdict.json", "verdict.md")


def test_the_report_a_worker_wrote_is_the_one_a_rebuild_writes(reference_study, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(reference_study, copy)
    shutil.rmtree(copy / "analysis")
    for name in OUTPUTS:
        (copy / name).unlink()
    write_report(copy)
    for name in OUTPUTS:
        assert (copy / name).read_bytes() == (reference_study / name).read_bytes(), name
    for metrics in (reference_study / "analysis").glob("*/metrics.json"):
        assert (copy / "analysis" / metrics.parent.name / "metrics.json").read_bytes() == metrics.read_bytes()
