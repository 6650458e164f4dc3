"""The GPU suite (experiments/bench/gpu_suite.py) on the CPU: its quick mode end to end with
wandb and mnist1d unimportable (the GPU machine has neither), so the first GPU run fails on
nothing a CPU could have caught; and its bookkeeping: a failing section is recorded and the
others go on, the budget, the section option.

KD_LS_CIFAR10_JPEG, when set, points the quick run at the real JPEG CIFAR-10 archive;
otherwise the suite builds a tiny tree of random images.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SUITE = ROOT / "experiments" / "bench" / "gpu_suite.py"
SECTIONS = ["correctness", "cluster", "throughput", "distill", "fast_preset", "fast_study", "throughput_compile"]


@pytest.fixture(scope="module")
def suite():
    """The suite as a module (it puts experiments/bench on sys.path for its siblings)."""
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_suite"]


def test_quick_mode_runs_every_section_without_wandb_or_mnist1d(tmp_path):
    out = tmp_path / "suite.json"
    argv = [str(SUITE), "--device", "cpu", "--quick", "--out", str(out)]
    if os.environ.get("KD_LS_CIFAR10_JPEG"):
        argv += ["--cifar", os.environ["KD_LS_CIFAR10_JPEG"]]
    code = ("import runpy, sys; sys.modules['wandb'] = None; sys.modules['mnist1d'] = None; "
            f"sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    sections = result["sections"]
    assert list(sections) == SECTIONS
    assert {name: s.get("error") for name, s in sections.items() if s["status"] != "ok"} == {}
    for name in SECTIONS:  # a progress line with the elapsed time per section
        assert f"] {name}: ok in " in proc.stdout
    env = result["environment"]
    assert env["torch"] and env["lightning"] and "cuda" in env and env["device"] == "cpu"

    setup = sections["throughput"]["result"]["setups"]["resnet20_b16"]
    assert setup["kdls"]["images_per_s"] > 0 and setup["common"]["images_per_s"] > 0
    where = setup["where_time_goes"]
    assert where["network_step_only_images_per_s"] > 0
    assert set(where["kdls"]["us_per_image"]) == {"whole_step", "network_step", "data_path_alone", "beyond_network"}
    assert sections["throughput_compile"]["result"]["settings"]["compile"] is True
    distill = sections["distill"]["result"]
    assert distill["kdls_cache"]["images_per_s"] > 0 and distill["cache_views"] == 162

    correctness = sections["correctness"]["result"]
    assert correctness["determinism"]["identical"] is True
    soft = correctness["soft_labels"]
    assert soft["fp32_agrees"] and soft["fp32"]["max_prob_diff"] < 1e-5 and soft["bf16"]["max_prob_diff"] > 0

    cluster = sections["cluster"]["result"]
    assert cluster["all_agree"] and len(cluster["records"]) == 12
    extrapolated = [r for r in cluster["records"] if r["reference"]["extrapolated"]]
    assert {r["metric"] for r in extrapolated} == {"silhouette_score", "class_separation_r2"}
    assert all(1.0 <= r["reference"]["growth_exponent_used"] <= 2.0 for r in extrapolated)

    assert 0.0 <= sections["fast_preset"]["result"]["test_acc"] <= 1.0
    study = sections["fast_study"]["result"]
    assert study["runs"] == 8 and study["failed_runs"] == [] and study["full_grid_runs"] == 66
    assert study["full_grid_estimate_s"] > 0 and study["verdict_written"]

    headline = result["headline"]
    assert headline["targets_apply"] is False and headline["sections_failed"] == []
    assert "distill_cache_over_online" in headline and "fast_study_full_grid_minutes" in headline


def test_a_failing_section_is_recorded_and_the_others_run(suite, tmp_path, capsys):
    empty = tmp_path / "no-images"
    empty.mkdir()
    out = tmp_path / "suite.json"
    suite.main(["--device", "cpu", "--quick", "--cifar", str(empty), "--sections", "fast_preset,cluster",
                "--out", str(out)])
    sections = json.loads(out.read_text())["sections"]
    assert list(sections) == ["fast_preset", "cluster"]
    assert sections["fast_preset"]["status"] == "error" and "SystemExit" in sections["fast_preset"]["error"]
    assert "holds no train/<class>/ and test/<class>/ image folders" in capsys.readouterr().err
    assert sections["cluster"]["status"] == "ok" and sections["cluster"]["result"]["all_agree"]


def test_nothing_starts_once_the_budget_is_spent(suite, tmp_path):
    out = tmp_path / "suite.json"
    suite.main(["--device", "cpu", "--quick", "--sections", "cluster,throughput", "--budget-s", "0", "--out", str(out)])
    result = json.loads(out.read_text())
    assert [s["status"] for s in result["sections"].values()] == ["skipped", "skipped"]
    assert result["headline"]["sections_skipped"] == ["cluster", "throughput"]


def test_bad_options_are_refused(suite):
    with pytest.raises(SystemExit):
        suite.parse_args(["--sections", "cluster,warp_drive"])
    with pytest.raises(SystemExit):
        suite.parse_args([])  # --cifar is needed outside --quick
