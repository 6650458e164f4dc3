"""The README's Performance table, generated from the benchmarks' committed JSON.

Each row reads one file of experiments/bench/results/ (written by the benchmark named in its
command column) and names the machine, its load while the benchmark ran, and the command that
wrote it. The table goes between the README's two marker comments; nothing else is touched.
tests/test_readme_figures.py fails when the README's table is not the one this script makes.

    python experiments/bench/readme_table.py           # rewrite the table in README.md
    python experiments/bench/readme_table.py --check   # exit 1 if README.md's table is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent.parent / "README.md"
START, END = "<!-- performance-table:start -->", "<!-- performance-table:end -->"


def machine(d: dict[str, Any]) -> str:
    """'2 CPUs (x86_64), load 1.2 -> 3.4': the machine and its 1-minute load before and after."""
    m = d["machine"]
    return f"{m['cpus']} CPUs ({m['processor']}), load {m['load_before'][0]:g} -> {m['load_after'][0]:g}"


def overhead_row(d: dict[str, Any]) -> tuple[str, str]:
    """kd-ls's training loop against a plain loop, per setup."""
    r = d["results"]
    what = (f"Lightning overhead: MNIST-1D MLP student, kd-ls loop / plain PyTorch loop ({d['threads']} thread, "
            f"batch {d['batch_size']}, {d['epochs_timed']} timed epochs, steps_per_call {d['steps_per_call']}, "
            f"median of {d['repeats']})")
    figure = (f"**{r['student_alone']['ratio_kdls_over_plain']:.2f}x** student alone, "
              f"**{r['distill_cache']['ratio_kdls_over_plain']:.2f}x** distilling from the cache "
              f"(target <= {d['target_ratio']:.2f}); CPU time {r['student_alone']['cpu_time']['ratio_kdls_over_plain']:.2f}x "
              f"and {r['distill_cache']['cpu_time']['ratio_kdls_over_plain']:.2f}x")
    return what, figure


def study_row(d: dict[str, Any]) -> tuple[str, str]:
    """`kd-ls study` against a plain loop of the same grid, with the training efficiency."""
    e, w = d["efficiency"], d["median_wall_s"]
    seeds = "one seed" if len(d["seeds"]) == 1 else f"{len(d['seeds'])} seeds"
    what = (f"{d['study']} study ({d['runs']} runs, {seeds}, {d['jobs']} workers): `kd-ls study` / plain PyTorch "
            f"loop of the same grid (median of {len(d['ratio_per_repeat'])})")
    figure = (f"**{d['ratio_kdls_over_plain']:.2f}x** (target <= {d['target_ratio']:.2f}): {w['kdls']:.0f} s vs "
              f"{w['plain']:.0f} s; training {e['kdls_flops_per_core'] / 1e9:.1f} GFLOP/s per core "
              f"({100 * e['kdls_share_of_peak']:.0f}% of a {e['matmul_peak_flops_per_core'] / 1e9:.0f} GFLOP/s "
              f"matmul), plain {e['plain_flops_per_core'] / 1e9:.1f}")
    return what, figure


def breakdown_row(d: dict[str, Any]) -> tuple[str, str]:
    """Where one kd-ls run's CPU time goes, per kind of run, and the study-level costs."""
    parts = []
    for role, b in (d.get("kdls_breakdown") or {}).items():
        shares = ", ".join(f"{name.replace('_', ' ')} {100 * share:.1f}%" for name, share in b["phases_cpu_share"].items()
                           if share >= 0.005)
        parts.append(f"{role} ({b['cpu_s']:.1f} s CPU): {shares}")
    s = d["study_level_s"]
    parts.append(f"per worker process: start {s['kdls_process_and_module_start_s']:.1f} s (plain "
                 f"{s['plain_process_and_module_start_s']:.1f} s); per study: verdict, report and plots "
                 f"{s['verdict_report_plots_s']:.1f} s")
    what = f"where a kd-ls study run's time goes ({d['study']}, one run of each kind, CPU-time shares)"
    return what, "; ".join(parts)


def start_row(d: dict[str, Any]) -> tuple[str, str]:
    """How fast the commands answer, and what the heavy imports cost."""
    what = (f"start time: each command in a fresh process (median of {d['repeats']}; the dry run is the default "
            f"study's), and each heavy import alone")
    commands = ", ".join(f"`{name}` **{t['median_s']:.2f} s**" for name, t in d["commands"].items())
    imports = ", ".join(f"{name} {t['median_s']:.2f} s" for name, t in d["imports"].items())
    figure = (f"{commands} (target < {d['target_s']:g} s each); imports, Python's own "
              f"{d['python_start_s']['median_s']:.2f} s start included: {imports}")
    return what, figure


ROWS: list[tuple[str, Callable[[dict[str, Any]], tuple[str, str]]]] = [
    ("start_time.json", start_row),
    ("overhead.json", overhead_row),
    ("study_vs_plain_quick.json", study_row),
    ("study_vs_plain_quick.json", breakdown_row),
    ("study_vs_plain.json", study_row),
]


def table(results: Path = RESULTS) -> str:
    """The markdown table of every row whose JSON exists."""
    lines = ["| what | figure | machine and load | command |", "|---|---|---|---|"]
    for name, row in ROWS:
        path = results / name
        if path.is_file():
            d = json.loads(path.read_text())
            what, figure = row(d)
            lines.append(f"| {what} | {figure} | {machine(d)} | `{d['command']}` |")
    return "\n".join(lines)


def with_table(readme: str, rendered: str) -> str:
    """`readme` with the text between the markers replaced by `rendered`."""
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README.md: the markers {START} and {END} are missing")
    return f"{head}{START}\n{rendered}\n{END}{tail}"


def main(argv: Optional[list[str]] = None) -> int:
    """Rewrite README.md's table, or with --check report whether it is stale."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md's table differs from the JSON")
    args = p.parse_args(argv)
    readme = README.read_text()
    updated = with_table(readme, table())
    if args.check:
        if updated != readme:
            print("README.md's Performance table is stale: run python experiments/bench/readme_table.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
