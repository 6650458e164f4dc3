"""Rebuilding the report of a study whose teachers are all analysed loads no Lightning: the
analysis code (and kd_ls.data, which imports Lightning, 2.7 s) is imported only for a teacher
that still needs its analysis. What is checked is what gets imported, in a fresh interpreter."""

import json
import subprocess
import sys

from kd_ls.layout import AnalysisLayout, StudyLayout


def test_analysed_teachers_are_read_without_importing_lightning(tmp_path):
    rows = [{"role": "teacher", "status": "done", "alpha": alpha, "seed": seed, "run_id": f"teacher-{alpha}-{seed}"}
            for alpha in (0.0, 0.1) for seed in (0, 1)]
    for row in rows:
        folder = StudyLayout.of(tmp_path).teacher_analysis(row["alpha"], None if row["seed"] == 0 else row["seed"])
        analysis = AnalysisLayout(folder)
        folder.mkdir(parents=True)
        analysis.metrics.write_text(json.dumps({"mutual_information": row["alpha"] + row["seed"]}))
        analysis.projection_points.write_bytes(b"")  # only its presence is checked
    script = ("import json, sys\nfrom pathlib import Path\nfrom kd_ls.report.write import analyze_teachers\n"
              f"rows = json.loads({json.dumps(rows)!r})\nanalyze_teachers(Path({str(tmp_path)!r}), rows)\n"
              "print('MI', [r['mutual_information'] for r in rows])\n"
              "print('LOADED', sorted(m for m in ('pytorch_lightning', 'kd_ls.data', 'kd_ls.analysis') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "MI [0.0, 1.0, 0.1, 1.1]" in done.stdout, (done.stdout[-500:], done.stderr[-500:])
    assert "LOADED []" in done.stdout, (done.stdout[-500:], done.stderr[-500:])
