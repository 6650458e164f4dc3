"""`kd-ls study` against a plain PyTorch loop running the same grid, timed side by side.

The grid is read from a study file (default: the shipped default study, whatever it says today;
``--config`` for another); ``--quick`` keeps its first seed only, and seeds a study would add
until its question is decided (``until_decided``) are left out, so both sides run one grid. Both sides start as whole
processes with the same number of worker processes (``--jobs``, default 2) and the study's CPU
threads per run:

* kd-ls: ``kd-ls study --config <the grid> --jobs N --no-progress`` into a fresh folder: every run
  with per-epoch validation, resumable checkpoints, logs, records, and the verdict, report and plots;
* plain: ``plain_study.py`` (beside this file): the same runs trained by a hand-written loop that
  saves final weights, computes the same end-of-run metrics through ``kd_ls.metrics``, caches
  teacher logits where the study does and picks the temperature on val accuracy.

Repeats alternate which side goes first. Then, outside the clock, one teacher, one baseline and
one student are run again in this process with kd-ls's phases timed (kdls_breakdown.py), and the
study-level parts are timed on their own: process and module start, the verdict, report and plots.
Efficiency: the grid's training FLOP (kd_ls.study.cost, as the dry run counts them) per second
of wall time per worker, against a float32 matmul peak measured here on one thread.

Ends by printing one JSON object (``ratio_kdls_over_plain``: wall-time ratio, median over
repeats; ``cpu_ratio_kdls_over_plain``: the same for both process trees' CPU time) and writing it to experiments/bench/results/study_vs_plain[_quick].json. A benchmark,
not a test; on a shared machine quote the load it records.

    python experiments/bench/study_vs_plain.py --quick          # one seed, a few minutes
    python experiments/bench/study_vs_plain.py                  # the whole default grid
    python experiments/bench/study_vs_plain.py --config configs/study/other.yaml --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KDLS = Path(sys.executable).with_name("kd-ls")


def load_grid(config: Optional[str], quick: bool, output: Path) -> Any:
    """The study of `config` (default: the shipped default), first seed only when `quick`, writing to `output`."""
    from kd_ls.study import load_study

    study = load_study(config)
    if quick:
        study.seeds = study.seeds[:1]
    if getattr(study, "until_decided", None) is not None:
        study.until_decided = None  # the planned seeds only: both sides run the same grid
    study.output = str(output)
    return study


def write_plan(study: Any, path: Path, jobs: int) -> None:
    """The plan plain_study.py reads: every planned run, the student's views, jobs and threads."""
    from kd_ls.data import DATASETS, ArrayDataModule
    from kd_ls.study.plan import plan_study

    import plain_study

    defaults = {**{k: p.default for k, p in inspect.signature(ArrayDataModule.__init__).parameters.items()},
                **{k: p.default for k, p in inspect.signature(DATASETS["mnist1d"].__init__).parameters.items()}}
    differs = {k: (v, defaults.get(k)) for k, v in plain_study.DATA_DEFAULTS.items() if defaults.get(k) != v}
    if differs:
        raise SystemExit(f"plain_study.DATA_DEFAULTS no longer match kd_ls.data's defaults: {differs}")
    views = DATASETS[study.dataset.name](**{**study.dataset.options, **study.student.data_options}).num_views
    runs = [{**dataclasses.asdict(r), "student_views": views} for r in plan_study(study)]
    path.write_text(json.dumps({"runs": runs, "jobs": jobs, "threads": study.threads}))


def timed(command: list[str], log: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command's whole process tree) of a
    command, its output to `log`; exits on failure. CPU time barely depends on other load."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}; see {log}:\n{log.read_text()[-2000:]}")
    return seconds, _children_cpu() - cpu_before


def _children_cpu() -> float:
    """CPU seconds of every finished child process (and the children they waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kdls_accuracies(study_dir: Path) -> dict[str, dict[str, float]]:
    """Run id -> val and test accuracy, from the kd-ls study's run records."""
    from kd_ls.records import read_record
    from kd_ls.study.plan import plan_study
    from kd_ls.study.spec import parse_study

    manifest = json.loads((study_dir / "study.json").read_text())
    out = {}
    for run in plan_study(parse_study(manifest["study"])):
        metrics = (read_record(study_dir, run.run_id) or {}).get("metrics", {})
        out[run.run_id] = {"val_acc": metrics.get("val/acc"), "test_acc": metrics.get("test/acc")}
    return out


def start_seconds(modules: str, repeats: int = 3) -> float:
    """Median wall seconds of a fresh Python process importing `modules` (what each worker pays once)."""
    times = [timed_call([sys.executable, "-c", f"import {modules}"]) for _ in range(repeats)]
    return statistics.median(times)


def timed_call(command: list[str]) -> float:
    """Wall seconds of a command whose output is discarded."""
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def report_seconds(study_dir: Path) -> float:
    """Seconds of the study's own verdict, results table, analyses, plots and report page."""
    from kd_ls.report.write import write_report

    start = time.perf_counter()
    write_report(study_dir)
    return time.perf_counter() - start


def matmul_peak(threads: int = 1, size: int = 1024, repeats: int = 7) -> float:
    """Best float32 matmul FLOP/s on `threads` threads (a square `size` product)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    torch.set_num_threads(saved)
    return 2 * size**3 / best


def training_flop(study: Any) -> float:
    """The grid's training FLOP as the dry run counts them (kd_ls.study.cost)."""
    from kd_ls.study.cost import input_spec_from_data, run_cost
    from kd_ls.study.plan import plan_study

    runs = plan_study(study)
    by_id = {r.run_id: r for r in runs}
    spec = input_spec_from_data(study)
    return sum(run_cost(r, by_id.get(r.teacher_id or ""), spec) for r in runs) * spec.train_samples


def plain_phases(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean seconds per phase of the plain runs, per kind of run."""
    out: dict[str, dict[str, float]] = {}
    for role in ("teacher", "baseline", "student"):
        runs = [r for r in result["runs"] if r["role"] == role]
        if runs:
            out[role] = {"runs": len(runs), "mean_wall_s": round(statistics.mean(r["seconds"] for r in runs), 3),
                         "mean_cpu_s": round(statistics.mean(r["cpu_seconds"] for r in runs), 3),
                         **{f"mean_{k}_cpu_s": round(statistics.mean(r["phases_cpu_s"][k] for r in runs), 3)
                            for k in runs[0]["phases_cpu_s"]}}
    return out


def kdls_run_seconds(study_dir: Path) -> dict[str, dict[str, float]]:
    """Mean seconds per run (kd-ls's own record: from entering the run to its record), per kind of run."""
    manifest = json.loads((study_dir / "study.json").read_text())
    out: dict[str, dict[str, float]] = {}
    for role in ("teacher", "baseline", "student"):
        seconds = [json.loads((study_dir / "runs" / r["run_id"] / "run.json").read_text())["seconds"]
                   for r in manifest["runs"] if r["role"] == role]
        if seconds:
            out[role] = {"runs": len(seconds), "mean_wall_s": round(statistics.mean(seconds), 3)}
    return out


def find_key(tree: Any, key: str) -> Any:
    """The first value stored under `key` anywhere in nested dicts and lists (None if absent)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    for item in tree if isinstance(tree, list) else ():
        found = find_key(item, key)
        if found is not None:
            return found
    return None


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Time both sides, break kd-ls's time down, print and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="study file (default: the shipped default study)")
    p.add_argument("--quick", action="store_true", help="the study's first seed only")
    p.add_argument("--jobs", type=int, default=2, help="worker processes on both sides (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="timed pairs, alternating which side goes first")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-phase breakdown of kd-ls's runs")
    p.add_argument("--out", help="JSON file (default: results/study_vs_plain[_quick].json beside this script)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    out_path = Path(args.out) if args.out else RESULTS / f"study_vs_plain{'_quick' if args.quick else ''}.json"
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="kdls-study-vs-plain-") as tmp_name:
        tmp = Path(tmp_name)
        study = load_grid(args.config, args.quick, tmp / "kdls")
        grid_file, plan_file = tmp / "grid.yaml", tmp / "plan.json"
        grid_file.write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
        write_plan(study, plan_file, args.jobs)
        kdls_cmd = [str(KDLS), "study", "--config", str(grid_file), "--jobs", str(args.jobs), "--no-progress"]
        plain_cmd = [sys.executable, str(HERE / "plain_study.py"), str(plan_file), str(tmp / "plain")]
        walls: dict[str, list[float]] = {"kdls": [], "plain": []}
        cpus: dict[str, list[float]] = {"kdls": [], "plain": []}
        for r in range(args.repeats):
            for side in (("kdls", "plain") if r % 2 == 0 else ("plain", "kdls")):
                shutil.rmtree(tmp / side, ignore_errors=True)
                wall, cpu = timed(kdls_cmd if side == "kdls" else plain_cmd, tmp / f"{side}.log")
                walls[side].append(wall)
                cpus[side].append(cpu)
        load_after = load_average()
        plain_result = json.loads((tmp / "plain" / "plain_result.json").read_text())
        kdls_dir = tmp / "kdls"
        verdict = json.loads((kdls_dir / "verdict.json").read_text())
        accuracies = kdls_accuracies(kdls_dir)
        study_level = {
            "kdls_process_and_module_start_s": round(start_seconds("kd_ls.study.runner, kd_ls.lightning.harness"), 3),
            "plain_process_and_module_start_s": round(start_seconds("torch, mnist1d.data, kd_ls.metrics, kd_ls.models"), 3),
            "verdict_report_plots_s": round(report_seconds(kdls_dir), 3),
        }
        per_run = kdls_run_seconds(kdls_dir)
        breakdown = None
        if not args.no_breakdown:
            from kdls_breakdown import breakdown as run_breakdown

            study.output = str(tmp / "breakdown")
            breakdown = run_breakdown(study, tmp / "breakdown")
        flop = training_flop(study)
    med = {k: statistics.median(v) for k, v in walls.items()}
    peak = matmul_peak()
    result = {
        "benchmark": "kd-ls study vs a plain PyTorch loop of the same grid",
        "command": "python experiments/bench/study_vs_plain.py" + (" --quick" if args.quick else "")
                   + (f" --config {args.config}" if args.config else "")
                   + (f" --repeats {args.repeats}" if args.repeats != 1 else "")
                   + (f" --jobs {args.jobs}" if args.jobs != 2 else "")
                   + (" --no-breakdown" if args.no_breakdown else ""),
        "study": study.name, "config": args.config or "shipped default study", "quick": args.quick,
        "seeds": study.seeds, "runs": len(accuracies), "jobs": args.jobs, "threads_per_run": study.threads,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "load_before": load_before, "load_after": load_after},
        "wall_s": {k: [round(x, 2) for x in v] for k, v in walls.items()},
        "median_wall_s": {k: round(v, 2) for k, v in med.items()},
        "ratio_per_repeat": [round(k / q, 4) for k, q in zip(walls["kdls"], walls["plain"])],
        "ratio_kdls_over_plain": round(med["kdls"] / med["plain"], 4),
        "cpu_s": {k: [round(x, 2) for x in v] for k, v in cpus.items()},
        "cpu_ratio_kdls_over_plain": round(statistics.median(cpus["kdls"]) / statistics.median(cpus["plain"]), 4),
        "target_ratio": 1.15,
        "kdls_mean_run_s": per_run,
        "plain_phases": plain_phases(plain_result),
        "kdls_breakdown": breakdown,
        "study_level_s": study_level,
        "efficiency": {
            "training_flop": flop, "matmul_peak_flops_per_core": round(peak),
            "kdls_flops_per_core": round(flop / (med["kdls"] * args.jobs)),
            "plain_flops_per_core": round(flop / (med["plain"] * args.jobs)),
            "kdls_share_of_peak": round(flop / (med["kdls"] * args.jobs) / peak, 4),
            "plain_share_of_peak": round(flop / (med["plain"] * args.jobs) / peak, 4),
        },
        "results": {
            "kdls_mean_test_acc": {role: round(statistics.mean(
                a["test_acc"] for rid, a in accuracies.items() if rid.startswith(role)), 4)
                for role in ("teacher", "baseline", "student")},
            "plain_mean_test_acc": {role: round(statistics.mean(
                r["metrics"]["test/acc"] for r in plain_result["runs"] if r["role"] == role), 4)
                for role in ("teacher", "baseline", "student")},
            "kdls_chosen_temperature": find_key(verdict, "best_temperature"),
            "plain_chosen_temperature": plain_result["chosen_temperature"],
            "kdls_accuracies": accuracies,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
