"""`kd-ls compare` on real study folders: the paired differences per T, Müller's protocol and
the teachers, side by side per study, printed and written to one CSV."""

import csv
import shutil

from kd_ls.commands.main import main
from kd_ls.layout import StudyLayout


def test_compare_prints_paired_mueller_and_teacher_tables(reference_study, tmp_path, capsys):
    other = tmp_path / "other"  # a second source: compare reads a study folder's results.csv
    other.mkdir()
    shutil.copy(StudyLayout.of(reference_study).results, StudyLayout.of(other).results)
    out = tmp_path / "compare.csv"
    main(["compare", str(reference_study), str(other), "--csv", str(out)])
    printed = capsys.readouterr().out
    for heading in ("## Paired differences", "## Müller's protocol", "## Teachers"):
        assert heading in printed
    assert "student alone with LS (alpha=0.1)" in printed  # a Müller row
    with open(out) as f:
        rows = list(csv.DictReader(f))
    by_table = {name: [r for r in rows if r["table"] == name] for name in ("paired", "mueller", "teachers")}
    # the tiny study: alphas 0 and 0.2, temperatures 1 and 4, 2 seeds; each source lists its own
    assert len(by_table["paired"]) == 2 * 2 and {r["T"] for r in by_table["paired"]} == {"1.0", "4.0"}
    assert {r["alpha"] for r in by_table["teachers"]} == {"0.0", "0.2"} and len(by_table["teachers"]) == 2 * 2
    assert {r["source"] for r in rows} == {str(reference_study), str(other)}
    assert by_table["mueller"] and all(r["comparison"] for r in by_table["mueller"])
    assert all(0 <= float(r["test_acc_mean"]) <= 100 and r["n"] == "2" for r in by_table["teachers"])
