"""How fast kd-ls answers: `kd-ls --help`, `kd-ls study --help` and `kd-ls study --dry-run` of the
default study, and what each heavy module costs to import, each in fresh processes.

Each command and each import is run `--repeats` times in a new interpreter (warm file cache: one
untimed run first); the median and the range are kept. Writes results/start_time.json beside this
file and prints it. A benchmark, not a test (tests/test_fast_start.py and tests/test_catalog.py
check what gets imported, never the time).

    python experiments/bench/start_time.py            # 7 repeats, about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
KDLS = Path(sys.executable).with_name("kd-ls")
# Heavy modules a kd-ls command may import, in the order they stack up in a training run.
MODULES = ("torch", "torchvision", "pytorch_lightning", "mnist1d.data", "matplotlib.pyplot", "scipy.stats",
           "statsmodels.stats.multitest", "sklearn.metrics", "wandb")
TARGET_S = 2.0


def seconds(command: list[str], repeats: int) -> dict[str, Any]:
    """Median, min and max wall seconds of `command` over `repeats` runs after one untimed run."""
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3)}


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Time the commands and the imports; write and print the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="kdls-start-") as tmp:
        commands = {
            "kd-ls --help": [str(KDLS), "--help"],
            "kd-ls study --help": [str(KDLS), "study", "--help"],
            "kd-ls study --dry-run": [str(KDLS), "study", "--dry-run", "--output", str(Path(tmp) / "study")],
        }
        timed = {name: seconds(command, args.repeats) for name, command in commands.items()}
    bare = seconds([sys.executable, "-c", "pass"], args.repeats)
    imports = {m: seconds([sys.executable, "-c", f"import {m}"], args.repeats) for m in MODULES}
    result = {
        "benchmark": "kd-ls start time: help pages, the default study's dry run, heavy imports",
        "command": "python experiments/bench/start_time.py" + (f" --repeats {args.repeats}" if args.repeats != 7 else ""),
        "repeats": args.repeats, "target_s": TARGET_S,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]},
        "commands": timed,
        "python_start_s": bare,
        # Each import in a fresh interpreter, Python's own start included (python_start_s).
        "imports": imports,
    }
    out = HERE / "results" / "start_time.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
