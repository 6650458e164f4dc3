"""Every GPU measurement of kd-ls in one command and one JSON file (also runs on the CPU, small).

    python experiments/bench/gpu_suite.py --cifar PATH --out gpu_suite.json      # one GPU, <= 8 min
    python experiments/bench/gpu_suite.py --device cpu --quick --out quick.json  # CPU, about a minute

`--cifar` is the JPEG copy of CIFAR-10 (a .tar.gz of cifar10-jpeg/{train,test}/<class>/*.jpg,
or the unpacked tree); `--quick` without it builds a tiny tree of random JPEGs. The JSON
holds the GPU model, torch/CUDA versions, every figure and a headline; it is rewritten after
every section and setup, so a run cut short keeps what it measured. Sections (`--sections`,
default all, in this order); one that fails records its error and the suite goes on:

correctness         the fast teacher preset (configs/fast/teacher_cifar10.yaml) trained twice at
                    once in two processes with configs/trainer/gpu_deterministic.yaml and
                    bf16: identical metrics.json? (if a kernel has no deterministic version,
                    also with `deterministic: warn`); then, with that teacher, the teacher-logit
                    cache (fp32, as a Student builds it) against the online teacher on random
                    crop/flip batches, in fp32 and under bf16 autocast: by how much they differ.
cluster             exact silhouette, class-separation R² and NC1 of kd_ls.metrics on the device
                    against scikit-learn on the CPU (R² by brute force over scikit-learn's cosine
                    distances, NC1 in NumPy: cluster_metrics.py) on 10-class blobs: time,
                    speedup (target >= 100x) and agreement (1e-4). The O(N² d) references
                    (silhouette, R²) run on the first `reference_max_n` rows above that N, and
                    their time is scaled to N by their growth measured between half that and it
                    (the exponent capped to [1, 2], so the speedup is never overstated); both are
                    recorded.
throughput          training images/s, kd-ls (Lightning, device-resident data) vs the common
                    recipe (torchvision transforms, DataLoader workers, plain loop), same
                    network, batch, bf16 and channels_last (throughput.py): ResNet-56 and
                    ResNet-20 at batch 128 and 512, and where the time goes: the data path alone,
                    the network's step alone on a resident batch, and what the loop adds.
distill             ResNet-56 -> ResNet-20 images/s: kd-ls online teacher, kd-ls teacher-logit
                    cache (its build timed apart), the common recipe's online teacher.
fast_preset         the fast teacher preset for its 15 epochs (configs/trainer/gpu.yaml: bf16):
                    test accuracy (target >= 92%) and wall time.
fast_study          configs/fast/study_cifar10.yaml cut to 2 alphas x 2 temperatures x 1 seed
                    (8 runs), `runs_per_gpu` runs at once on the GPU: wall time, extrapolated to
                    the full 4x4x3 grid (66 runs; target < 10 min) from the mean run time of each
                    role and the concurrency reached.
throughput_compile  the throughput setups again with torch.compile (last: compiling costs the
                    most minutes, and a setup not started within the budget is recorded as skipped).

Budget of the full mode (one H100/H200, 16 CPU cores, <= 8 minutes, `--budget-s` 450 by
default: no new section or setup starts after that): throughput runs 16,384 timed images per
run (128 steps at batch 128, 32 at 512; at least 30) after 10 warm-up steps, over all 45,000
training images, the common recipe with 8 DataLoader workers; distill uses 500 images per
class (the cache is 162 views x 4,500 images, built in about 20 s; images/s does not depend on
the data's size); the determinism runs train 2 epochs on 500 images per class; the cluster
references run in full up to N = 10,000; the fast study runs 4 runs at once. Estimated (no
GPU run has been made yet): correctness ~30 s, cluster ~60 s, throughput ~80 s, distill ~40 s,
fast preset ~40 s, fast study ~120 s, compile the rest. The first decode of the archive (~20 s) is cached in
$KD_LS_CACHE.

Quick mode (`--quick`): the same code paths on 8 images per class (2 for the correctness
checks, 1 for distillation, from an MLP teacher: a cache holds 162 views per image), ResNet-20
only, batch 16, 1-epoch fits of narrow fastnets (widths 16/32/32, students 8/16/16), blobs of
N <= 2,000 and d <= 64, and the cut-down study in the suite's process (spawning workers costs
more than its 8 tiny runs; tests/test_study.py and tests/test_devices.py cover the pool). On
the CPU the throughput comparisons run in float32 (CPU bf16 convolutions without AVX512-BF16
or AMX are emulated, tens of times slower); the fits keep the presets' bf16-mixed, and the
soft-label check compares bf16 autocast on any device. torch.compile runs with TorchDynamo
disabled (compiling would take minutes on 2 cores: the compile plumbing runs, the compiler
does not). Each section records its wall and CPU time (`cpu_s`, children included). The
suite imports neither wandb nor mnist1d.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
if str(BENCH) not in sys.path:  # the sibling benchmarks, also when run through runpy.run_path
    sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

import cluster_metrics  # noqa: E402  (experiments/bench/cluster_metrics.py)
import throughput  # noqa: E402  (experiments/bench/throughput.py)
from kd_ls.commands.main import main as kdls_main  # noqa: E402
from kd_ls.data import ArrayDataModule, ImageFolder  # noqa: E402
from kd_ls.data.augment import random_crop_flip  # noqa: E402
from kd_ls.layout import RunLayout, StudyLayout  # noqa: E402
from kd_ls.lightning.checkpoint import load_network  # noqa: E402
from kd_ls.lightning.teacher_cache import compute_logit_cache  # noqa: E402
from kd_ls.study import parse_study, run_study  # noqa: E402
from kd_ls.study.plan import plan_study  # noqa: E402
from kd_ls.study.runner import default_jobs, quiet_lightning, read_record  # noqa: E402
from kd_ls.study.spec import Study, validate  # noqa: E402
from timing import resident, timed_steps  # noqa: E402  (experiments/bench/timing.py)

FAST_TEACHER = ROOT / "configs" / "fast" / "teacher_cifar10.yaml"
FAST_STUDY = ROOT / "configs" / "fast" / "study_cifar10.yaml"
GPU_TRAINER = ROOT / "configs" / "trainer" / "gpu.yaml"
DETERMINISTIC_TRAINER = ROOT / "configs" / "trainer" / "gpu_deterministic.yaml"
CLUSTER_METRICS = ("silhouette_score", "class_separation_r2", "nc1")
QUADRATIC = ("silhouette_score", "class_separation_r2")  # O(N^2 d) references, subsampled at large N
REFERENCE_NAMES = {"silhouette_score": "sklearn.metrics.silhouette_score",
                   "class_separation_r2": "brute force over sklearn.metrics.pairwise_distances_chunked(cosine)",
                   "nc1": "NumPy float64 Tr(Sigma_W pinv(Sigma_B)) / K"}
TARGETS = {"resnet56_b128_kdls_over_common": 5.0, "cache_over_online": 1.5, "fast_preset_test_acc": 0.92,
           "fast_study_full_grid_minutes": 10.0, "cluster_speedup": 100.0, "cluster_agreement": 1e-4}
FULL_BUDGET_S = 450.0


@dataclass(frozen=True)
class Sizes:
    """Every size the suite uses (FULL: one GPU within 8 minutes; QUICK: tiny, for a CPU)."""

    nets: tuple[str, ...]  # throughput networks
    batches: tuple[int, ...]
    timed_images: int  # per throughput run: steps = max(min_steps, timed_images // batch)
    min_steps: int
    warmup_steps: int
    workers: int  # the common recipe's DataLoader workers
    max_per_class: Optional[int]  # throughput data (None: the whole archive)
    distill: tuple[str, str]  # teacher, student
    distill_batch: int
    distill_max_per_class: int
    check_max_per_class: int  # correctness: the determinism runs and the soft-label check
    check_batches: int
    det_epochs: int
    fit_batch: Optional[int]  # batch of the preset fits (None: the presets' own)
    preset_epochs: Optional[int]  # None: the presets' own 15
    teacher_widths: Optional[tuple[int, ...]]  # fastnet widths of the preset fits (None: the presets' own)
    student_widths: Optional[tuple[int, ...]]  # fastnet_small widths of the study's students
    runs_per_gpu: int
    study_jobs: Optional[int]  # None: the runner's default (runs_per_gpu per GPU); 1: in this process
    cluster_sizes: tuple[int, ...]
    cluster_dims: tuple[int, ...]
    reference_max_n: int
    cluster_repeat: int

    def steps_for(self, batch: int) -> int:
        """Timed optimizer steps of a throughput run at `batch`."""
        return max(self.min_steps, self.timed_images // batch)


FULL = Sizes(nets=("resnet56", "resnet20"), batches=(128, 512), timed_images=16384, min_steps=30, warmup_steps=10,
             workers=min(8, os.cpu_count() or 1), max_per_class=None, distill=("resnet56", "resnet20"),
             distill_batch=512, distill_max_per_class=500, check_max_per_class=500, check_batches=8, det_epochs=2,
             fit_batch=None, preset_epochs=None, teacher_widths=None, student_widths=None, runs_per_gpu=4,
             study_jobs=None, cluster_sizes=(10000, 50000),
             cluster_dims=(512, 2048), reference_max_n=10000, cluster_repeat=3)
QUICK = Sizes(nets=("resnet20",), batches=(16,), timed_images=32, min_steps=2, warmup_steps=1, workers=1,
              max_per_class=8, distill=("mlp", "resnet20"), distill_batch=8, distill_max_per_class=1,
              check_max_per_class=2, check_batches=2, det_epochs=1, fit_batch=16, preset_epochs=1,
              teacher_widths=(16, 32, 32), student_widths=(8, 16, 16), runs_per_gpu=1, study_jobs=1,
              cluster_sizes=(1000, 2000), cluster_dims=(16, 64), reference_max_n=1000, cluster_repeat=1)


class Suite:
    """One invocation: settings, the clock, the results so far and the JSON they are written to."""

    def __init__(self, args: argparse.Namespace, device: torch.device, cifar: str, work: Path) -> None:
        self.device, self.quick, self.cifar, self.work = device, args.quick, cifar, work
        self.sizes = QUICK if args.quick else FULL
        self.budget_s = args.budget_s if args.budget_s is not None else (None if args.quick else FULL_BUDGET_S)
        self.out = Path(args.out)
        self.started = time.perf_counter()
        self.results: dict[str, Any] = {
            "suite": "kd-ls GPU suite (experiments/bench/gpu_suite.py)", "mode": "quick" if args.quick else "full",
            "command": sys.argv, "environment": environment(device), "data": cifar,
            "budget_s": self.budget_s, "settings": asdict(self.sizes), "targets": TARGETS, "sections": {},
        }

    @property
    def cuda(self) -> bool:
        """True on a GPU."""
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        """Precision of the throughput comparisons: bf16 on a GPU; float32 on the CPU, whose bf16
        convolutions (without AVX512-BF16/AMX) are emulated and tens of times slower."""
        return "bf16-mixed" if self.cuda else "32"

    def elapsed(self) -> float:
        """Seconds since the suite started."""
        return time.perf_counter() - self.started

    def over_budget(self) -> bool:
        """True once the time budget is spent (nothing new starts then)."""
        return self.budget_s is not None and self.elapsed() > self.budget_s

    def log(self, message: str) -> None:
        """A progress line with the elapsed time."""
        print(f"[{self.elapsed():6.1f} s] {message}", flush=True)

    def save(self) -> None:
        """Write the results so far (atomically: a reader never sees half a file)."""
        self.results["elapsed_s"] = round(self.elapsed(), 2)
        self.results["headline"] = headline(self.results["sections"], self.quick)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        tmp.write_text(json.dumps(self.results, indent=2, default=str))
        os.replace(tmp, self.out)

    def trainer_args(self, config: Path) -> list[str]:
        """`--trainer FILE` for a fit, on the CPU with the accelerator overridden."""
        return ["--trainer", str(config)] + ([] if self.cuda else ["--trainer.accelerator", "cpu"])

    def fit_args(self, run_dir: Path, trainer: Path, max_per_class: Optional[int], epochs: Optional[int]) -> list[str]:
        """`kd-ls fit` arguments of the fast teacher preset on the suite's data (its data module
        switched to kd_ls.data.ImageFolder, whatever the preset reads), cut to size."""
        argv = ["fit", "--config", str(FAST_TEACHER), *self.trainer_args(trainer),
                "--trainer.default_root_dir", str(run_dir), "--data.class_path", "kd_ls.data.ImageFolder",
                "--data.init_args.path", self.cifar,
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
        if max_per_class is not None:
            argv += ["--data.init_args.max_per_class", str(max_per_class)]
        if self.sizes.fit_batch is not None:
            argv += ["--data.init_args.batch_size", str(self.sizes.fit_batch),
                     "--data.init_args.eval_batch_size", str(4 * self.sizes.fit_batch)]
        if epochs is not None:  # the warm-up keeps its share of the run (2 of 15 epochs)
            preset = yaml.safe_load(FAST_TEACHER.read_text())
            share = preset["model"]["init_args"]["warmup_epochs"] / preset["trainer"]["max_epochs"]
            argv += ["--trainer.max_epochs", str(epochs), "--model.init_args.warmup_epochs", f"{epochs * share:.4f}"]
        if self.sizes.teacher_widths is not None:
            argv += ["--model.init_args.net_kwargs", json.dumps({"widths": list(self.sizes.teacher_widths)})]
        return argv


# ---- environment and headline -------------------------------------------------------------------

def environment(device: torch.device) -> dict[str, Any]:
    """The machine and software the figures come from."""
    info: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "lightning": pl.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gpu": None, "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}",
                    tf32_convolutions=torch.backends.cudnn.allow_tf32)
    return info


def _get(tree: dict[str, Any], *path: str) -> Any:
    for key in path:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def headline(sections: dict[str, Any], quick: bool) -> dict[str, Any]:
    """The figures the issue asks for, with their targets (targets apply to the full GPU mode only)."""
    h: dict[str, Any] = {"targets_apply": not quick}
    for label, name in (("eager", "throughput"), ("compiled", "throughput_compile")):
        setup = _get(sections, name, "result", "setups", "resnet56_b128") or {}
        if "ratio_kdls_over_common" in setup:
            h[f"resnet56_b128_kdls_over_common_{label}"] = round(setup["ratio_kdls_over_common"], 3)
    distill = _get(sections, "distill", "result") or {}
    if "ratio_cache_over_online" in distill:
        h["distill_cache_over_online"] = round(distill["ratio_cache_over_online"], 3)
    for key, path in (("fast_preset_test_acc", ("fast_preset", "result", "test_acc")),
                      ("fast_preset_wall_s", ("fast_preset", "result", "wall_s")),
                      ("fast_study_cut_wall_s", ("fast_study", "result", "wall_s")),
                      ("fast_study_full_grid_minutes", ("fast_study", "result", "full_grid_estimate_minutes")),
                      ("cluster_min_speedup", ("cluster", "result", "min_speedup")),
                      ("cluster_all_agree", ("cluster", "result", "all_agree")),
                      ("deterministic_identical", ("correctness", "result", "determinism", "identical")),
                      *((f"soft_labels_{p}_max_prob_diff", ("correctness", "result", "soft_labels", p, "max_prob_diff"))
                        for p in ("fp32", "bf16"))):
        value = _get(sections, *path)
        if value is not None:
            h[key] = value
    h["sections_failed"] = [name for name, s in sections.items() if s.get("status") == "error"]
    h["sections_skipped"] = [name for name, s in sections.items() if s.get("status") == "skipped"]
    return h


# ---- correctness ------------------------------------------------------------------------------------

def repeat_fit(suite: Suite, tag: str, *extra: str) -> dict[str, Any]:
    """Two identical deterministic fits at once, each in its own process: same metrics.json?

    Own processes because Lightning's `deterministic` switches torch to deterministic
    algorithms for the rest of the process (and cuBLAS reads its workspace setting once)."""
    runs = [suite.work / "determinism" / tag / f"run{i}" for i in range(2)]
    procs = []
    start = time.perf_counter()
    for run in runs:
        run.mkdir(parents=True)
        argv = suite.fit_args(run, DETERMINISTIC_TRAINER, suite.sizes.check_max_per_class, suite.sizes.det_epochs)
        log = open(run / "fit.log", "w")
        procs.append((subprocess.Popen([sys.executable, "-m", "kd_ls.commands.main", *argv, "--trainer.precision",
                                        "bf16-mixed", *extra], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log))
    errors = []
    for (proc, log), run in zip(procs, runs):
        try:
            code = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:  # never leave a fit behind on a lent machine
            proc.kill()
            code = proc.wait()
        log.close()
        if code != 0:
            lines = (run / "fit.log").read_text().strip().splitlines() or ["(no output)"]
            errors.append(f"{run.name}: exit {code}: {lines[-1]}")
    result: dict[str, Any] = {"trainer": [str(DETERMINISTIC_TRAINER.relative_to(ROOT)), "precision bf16-mixed", *extra],
                              "wall_s": round(time.perf_counter() - start, 2), "errors": errors}
    if not errors:
        first, second = (json.loads(RunLayout.of(run).metrics.read_text()) for run in runs)
        result.update(identical=first == second, metrics_compared=len(first), test_acc=first.get("test/acc"),
                      differing={k: [first.get(k), second.get(k)] for k in sorted({*first, *second})
                                 if first.get(k) != second.get(k)},
                      checkpoint=str(RunLayout.of(runs[0]).last_checkpoint))
    return result


def deterministic_repeat(suite: Suite) -> dict[str, Any]:
    """The determinism check; with `deterministic: warn` too when a kernel has no deterministic version."""
    strict = repeat_fit(suite, "strict")
    out: dict[str, Any] = {"strict": strict, "identical": strict.get("identical")}
    if any("deterministic implementation" in error for error in strict["errors"]):
        warn = repeat_fit(suite, "warn", "--trainer.deterministic", "warn")
        out.update(warn_only=warn, identical=warn.get("identical"))
    return out


def max_diffs(online: torch.Tensor, cached: torch.Tensor) -> dict[str, float]:
    """Largest |logit| and |probability| (at T = 1 and 4) differences of two logit batches."""
    probs = max((F.softmax(online / t, -1) - F.softmax(cached / t, -1)).abs().max().item() for t in (1.0, 4.0))
    return {"max_logit_diff": (online - cached).abs().max().item(), "max_prob_diff": probs}


def cached_vs_online(suite: Suite, checkpoint: Optional[str]) -> dict[str, Any]:
    """The teacher-logit cache (fp32, as Student.on_fit_start builds it) against the online
    teacher (fp32 and bf16 autocast, as in a bf16-mixed training step) on crop/flip batches."""
    batch = suite.sizes.fit_batch or 512
    dm = resident(ImageFolder(path=suite.cifar, max_per_class=suite.sizes.check_max_per_class, augment=True,
                              batch_size=batch, eval_batch_size=4 * batch), suite.device)
    what = "the determinism run's trained fast teacher"
    if checkpoint is None:
        checkpoint, what = throughput.write_teacher_ckpt("fastnet", str(suite.work)), "fastnet at initialisation"
    teacher = load_network(checkpoint, 10).to(suite.device, memory_format=torch.channels_last)
    cache = compute_logit_cache(teacher, dm)
    generator = torch.Generator(device=suite.device).manual_seed(0)
    worst: dict[str, dict[str, float]] = {"fp32": {}, "bf16": {}}
    contexts = {"fp32": nullcontext, "bf16": lambda: torch.autocast(suite.device.type, dtype=torch.bfloat16)}
    checked = 0
    for x, _, idx, _ in itertools.islice(dm.train_dataloader(), suite.sizes.check_batches):
        views_x, views = random_crop_flip(x, dm.augment_pad, generator=generator)
        inputs = dm.normalize(views_x).contiguous(memory_format=torch.channels_last)
        for precision, context in contexts.items():
            with torch.no_grad(), context():
                online = teacher(inputs).float()
            for key, value in max_diffs(online, cache[idx, views]).items():
                worst[precision][key] = max(worst[precision].get(key, 0.0), value)
        checked += x.shape[0]
    return {"teacher": what, "views": dm.num_views, "train_images": int(dm.splits["train"][1].shape[0]),
            "images_checked": checked, **worst,
            # fp32 differs only by kernel choice (and TF32 convolutions where on): well under 1e-3
            "fp32_agrees": worst["fp32"]["max_prob_diff"] < 1e-3}


def section_correctness(suite: Suite, out: dict[str, Any]) -> None:
    """Deterministic repeat, then cached vs online soft labels with the teacher it trained."""
    out["determinism"] = deterministic_repeat(suite)
    suite.log(f"  deterministic repeat: identical={out['determinism']['identical']}")
    suite.save()
    checkpoint = next((r["checkpoint"] for r in (out["determinism"].get("warn_only"), out["determinism"]["strict"])
                       if r and "checkpoint" in r), None)
    out["soft_labels"] = cached_vs_online(suite, checkpoint)
    suite.log(f"  cache vs online: fp32 {out['soft_labels']['fp32']['max_prob_diff']:.2e}, "
              f"bf16 {out['soft_labels']['bf16']['max_prob_diff']:.2e} (max |prob| diff)")


# ---- cluster metrics ------------------------------------------------------------------------------

def reference_timing(name: str, features: torch.Tensor, labels: torch.Tensor, max_n: int) -> dict[str, Any]:
    """The CPU reference on all rows, or (O(N^2) references above `max_n`) on the first `max_n`
    rows, its time scaled to N by the growth measured between max_n / 2 and max_n rows."""
    n = features.shape[0]
    if name not in QUADRATIC or n <= max_n:
        seconds, value = cluster_metrics.time_reference(name, features.numpy(), labels.numpy())
        return {"seconds": seconds, "value": value, "rows": n, "extrapolated": False}
    half, _ = cluster_metrics.time_reference(name, features[: max_n // 2].numpy(), labels[: max_n // 2].numpy())
    full, value = cluster_metrics.time_reference(name, features[:max_n].numpy(), labels[:max_n].numpy())
    measured = math.log(full / half) / math.log(max_n / (max_n // 2))
    growth = min(2.0, max(1.0, measured))  # capped: the speedup is never overstated
    return {"seconds": full * (n / max_n) ** growth, "value": value, "rows": max_n, "extrapolated": True,
            "measured_seconds": {str(max_n // 2): half, str(max_n): full}, "growth_exponent_measured": measured,
            "growth_exponent_used": growth}


def compare_metric(suite: Suite, name: str, features: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """One metric at one (N, d): ours on the device vs the CPU reference, time and agreement."""
    h, y = features.to(suite.device), labels.to(suite.device)
    metric = cluster_metrics.OURS[name]
    seconds, value = cluster_metrics.time_ours(lambda: metric(h, y), suite.device, suite.sizes.cluster_repeat)
    reference = reference_timing(name, features, labels, suite.sizes.reference_max_n)
    rows = reference["rows"]
    ours_on_rows = value if rows == features.shape[0] else float(metric(h[:rows], y[:rows]))
    diff = abs(ours_on_rows - reference["value"])
    return {"metric": name, "n": features.shape[0], "d": features.shape[1], "device": str(suite.device),
            "dtype": "float32", "seconds": seconds, "value": value,
            "reference": {"what": REFERENCE_NAMES[name], "device": "cpu", **reference},
            "speedup": reference["seconds"] / seconds,
            "agreement": {"rows": rows, "ours": ours_on_rows, "abs_diff": diff,
                          "ok": diff <= TARGETS["cluster_agreement"] * max(1.0, abs(reference["value"]))}}


def section_cluster(suite: Suite, out: dict[str, Any]) -> None:
    """Every metric at every (N, d) of the sizes."""
    out["records"] = records = []
    out["note"] = ("reference.extrapolated: the reference ran on reference.rows rows, its time scaled to n by "
                   "its measured growth; agreement compares ours and the reference on the same rows")
    for n, d in itertools.product(suite.sizes.cluster_sizes, suite.sizes.cluster_dims):
        features, labels = cluster_metrics.blobs(n, d, seed=0)
        for name in CLUSTER_METRICS:
            record = compare_metric(suite, name, features, labels)
            records.append(record)
            reference = record["reference"]
            suite.log(f"  {name} n={n} d={d}: {record['seconds'] * 1e3:.1f} ms vs {reference['seconds']:.2f} s"
                      f"{' (extrapolated)' if reference['extrapolated'] else ''}: {record['speedup']:.0f}x, "
                      f"|diff| {record['agreement']['abs_diff']:.1e}")
            suite.save()
    out["min_speedup"] = min(r["speedup"] for r in records)
    out["all_agree"] = all(r["agreement"]["ok"] for r in records)


# ---- throughput --------------------------------------------------------------------------------------

def throughput_args(suite: Suite, batch: int, compile: bool, max_per_class: Optional[int]) -> argparse.Namespace:
    """throughput.py's settings for one setup: the suite's precision, channels_last, this batch."""
    s = suite.sizes
    argv = ["--data", suite.cifar, "--batch-size", str(batch), "--precision", suite.precision, "--channels-last",
            "--steps", str(s.steps_for(batch)), "--warmup-steps", str(s.warmup_steps), "--workers", str(s.workers)]
    argv += ["--max-per-class", str(max_per_class)] if max_per_class is not None else []
    argv += ["--compile"] if compile else []
    return throughput.build_parser().parse_args(argv)


def images_per_s(args: argparse.Namespace, seconds: float) -> float:
    """Images per second of `args.steps` batches in `seconds`."""
    return args.steps * args.batch_size / seconds


def where_time_goes(args: argparse.Namespace, device: torch.device, net: str,
                    measured: dict[str, Any]) -> dict[str, Any]:
    """Per-image microseconds of each side: its whole training step (measured), its data path
    alone, and the network's own step on one resident batch (the same work on both sides);
    `beyond_network` = whole - network: what the loop adds (data not hidden behind the
    network, framework, host waits)."""
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    dm = resident(throughput.make_datamodule(args), device)

    def kdls_pass() -> Any:
        return (dm.prepare_batch(b, training=True)[:2] for b in dm.train_dataloader())

    x, y = next(iter(kdls_pass()))
    network = timed_steps(lambda: itertools.repeat((x.contiguous(memory_format=fmt), y)),
                          throughput.plain_step(args, device, net), args.warmup_steps, args.steps, device)
    data = {"kdls": timed_steps(kdls_pass, lambda batch: None, args.warmup_steps, args.steps, device)}
    loader = throughput.common_loader(args, device)
    data["common"] = timed_steps(throughput.device_batches(args, loader, device), lambda batch: None,
                                 args.warmup_steps, args.steps, device)
    del loader  # stop its workers
    network_us = 1e6 / images_per_s(args, network)
    out: dict[str, Any] = {"network_step_only_images_per_s": images_per_s(args, network)}
    for side, seconds in data.items():
        total_us = 1e6 / measured[side]["images_per_s"]
        out[side] = {"data_path_only_images_per_s": images_per_s(args, seconds),
                     "us_per_image": {"whole_step": total_us, "network_step": network_us,
                                      "data_path_alone": 1e6 / images_per_s(args, seconds),
                                      "beyond_network": total_us - network_us}}
    return out


def bench_setup(suite: Suite, net: str, batch: int, compile: bool) -> dict[str, Any]:
    """kd-ls vs the common recipe for one network and batch, and where the time goes."""
    args = throughput_args(suite, batch, compile, suite.sizes.max_per_class)
    with tempfile.TemporaryDirectory(dir=suite.work) as folder:
        measured = throughput.bench_teacher(args, suite.device, net, folder)
    measured["where_time_goes"] = where_time_goes(args, suite.device, net, measured)
    measured["steps"], measured["warmup_steps"] = args.steps, args.warmup_steps
    return measured


def throughput_grid(suite: Suite, out: dict[str, Any], compile: bool) -> None:
    """Every network x batch, most important first (ResNet-56 at 128); skipped past the budget."""
    out["settings"] = {"precision": suite.precision, "channels_last": True, "compile": compile,
                       "workers": suite.sizes.workers, "max_per_class": suite.sizes.max_per_class}
    out["setups"] = setups = {}
    for net, batch in itertools.product(suite.sizes.nets, suite.sizes.batches):
        key = f"{net}_b{batch}"
        if suite.over_budget():
            setups[key] = {"skipped": f"not started: the {suite.budget_s:.0f} s budget was spent"}
            continue
        start = time.perf_counter()
        setups[key] = r = bench_setup(suite, net, batch, compile)
        suite.log(f"  {key}{' compiled' if compile else ''}: kd-ls {r['kdls']['images_per_s']:,.0f} img/s, common "
                  f"{r['common']['images_per_s']:,.0f} img/s ({r['ratio_kdls_over_common']:.2f}x) "
                  f"[{time.perf_counter() - start:.0f} s]")
        suite.save()


def section_throughput(suite: Suite, out: dict[str, Any]) -> None:
    """The throughput grid without compilation."""
    throughput_grid(suite, out, compile=False)


def section_throughput_compile(suite: Suite, out: dict[str, Any]) -> None:
    """The throughput grid with torch.compile (TorchDynamo disabled in --quick: see the docstring)."""
    out["dynamo"] = "disabled (--quick)" if suite.quick else "enabled"
    with torch._dynamo.config.patch(disable=True) if suite.quick else nullcontext():
        throughput_grid(suite, out, compile=True)


def section_distill(suite: Suite, out: dict[str, Any]) -> None:
    """Distillation images/s: online teacher, teacher-logit cache, the common recipe (throughput.py)."""
    s = suite.sizes
    args = throughput_args(suite, s.distill_batch, False, s.distill_max_per_class)
    args.distill_teacher, args.distill_student = s.distill
    with tempfile.TemporaryDirectory(dir=suite.work) as folder:
        out.update(throughput.bench_distill(args, suite.device, folder))
    out.update(max_per_class=s.distill_max_per_class, batch_size=args.batch_size, steps=args.steps)
    suite.log(f"  {s.distill[0]} -> {s.distill[1]}: online {out['kdls_online']['images_per_s']:,.0f} img/s, cache "
              f"{out['kdls_cache']['images_per_s']:,.0f} img/s ({out['ratio_cache_over_online']:.2f}x), "
              f"cache build {out['cache_build_s']:.1f} s")


# ---- the fast CIFAR-10 preset and study ------------------------------------------------------------

def section_fast_preset(suite: Suite, out: dict[str, Any]) -> None:
    """configs/fast/teacher_cifar10.yaml on configs/trainer/gpu.yaml: test accuracy and wall time."""
    run = suite.work / "fast_preset"
    start = time.perf_counter()
    kdls_main(suite.fit_args(run, GPU_TRAINER, suite.sizes.max_per_class, suite.sizes.preset_epochs))
    wall = time.perf_counter() - start
    metrics = json.loads(RunLayout.of(run).metrics.read_text())
    epochs = yaml.safe_load(RunLayout.of(run).config.read_text())["trainer"]["max_epochs"]
    out.update(test_acc=metrics["test/acc"], val_acc=metrics["val/acc"], wall_s=round(wall, 2), epochs=epochs,
               meets_target=None if suite.quick else metrics["test/acc"] >= TARGETS["fast_preset_test_acc"])
    suite.log(f"  fast teacher: test acc {metrics['test/acc']:.4f} after {epochs} epochs in {wall:.1f} s")


def fast_study(cifar: str) -> Study:
    """configs/fast/study_cifar10.yaml on the image folder `cifar`, keeping the file's data
    options that ImageFolder takes (validation checks the data exists: replaced before it)."""
    raw = yaml.safe_load(FAST_STUDY.read_text())
    accepted = {*inspect.signature(ImageFolder).parameters, *inspect.signature(ArrayDataModule).parameters}
    options = {k: v for k, v in raw["dataset"].get("options", {}).items() if k in accepted}
    raw["dataset"] = {"name": "image_folder", "options": {**options, "path": cifar}}
    return parse_study(raw)


def cut_down_study(suite: Suite) -> Study:
    """The fast study cut to 2 alphas x 2 temperatures x 1 seed, on the suite's data and device."""
    study = fast_study(suite.cifar)
    study.alphas, study.temperatures, study.seeds = [0.0, 0.1], [1.0, 4.0], [0]
    study.name, study.output = "cifar10-fast-cut", str(suite.work / "fast_study")
    study.cluster.runs_per_gpu = suite.sizes.runs_per_gpu
    study.trainer["accelerator"] = "gpu" if suite.cuda else "cpu"
    if suite.sizes.max_per_class is not None:
        study.dataset.options["max_per_class"] = suite.sizes.max_per_class
    for recipe in (study.teacher, study.student):
        if suite.sizes.preset_epochs is not None:  # the warm-up keeps its share of the run
            recipe.warmup_epochs *= suite.sizes.preset_epochs / recipe.epochs
            recipe.epochs = suite.sizes.preset_epochs
        if suite.sizes.fit_batch is not None:
            recipe.batch_size = suite.sizes.fit_batch
            study.dataset.options["eval_batch_size"] = 4 * suite.sizes.fit_batch
    for recipe, widths in ((study.teacher, suite.sizes.teacher_widths), (study.student, suite.sizes.student_widths)):
        if widths is not None:
            recipe.model_kwargs = {"widths": list(widths)}
    return validate(study)


def extrapolate(cut: Study, cifar: str, wall: float) -> dict[str, Any]:
    """The full 4x4x3 grid's wall time from the cut-down study: each planned run of the grid
    costs the mean run time of its role in the cut-down study, and runs overlap as much as
    they did there (the sum of run times / wall time, which also carries the worker start-up
    and the report)."""
    full = plan_study(fast_study(cifar))
    records = {run.run_id: (run, read_record(Path(cut.output), run.run_id)) for run in plan_study(cut)}
    failed = [run.label for run, record in records.values() if not record or record.get("status") != "done"]
    by_role: dict[str, list[float]] = {}
    for run, record in records.values():
        by_role.setdefault(run.role, []).append(record["seconds"] if record else float("nan"))
    mean = {role: statistics.mean(seconds) for role, seconds in by_role.items()}
    concurrency = sum(sum(seconds) for seconds in by_role.values()) / wall
    full_busy = sum(mean[run.role] for run in full)
    estimate = full_busy / concurrency
    return {"runs": len(records), "failed_runs": failed, "mean_run_s_by_role": mean,
            "concurrency": round(concurrency, 3), "full_grid_runs": len(full),
            "full_grid_run_seconds": round(full_busy, 1), "full_grid_estimate_s": round(estimate, 1),
            "full_grid_estimate_minutes": round(estimate / 60, 2),
            "method": "sum over the full grid's runs of their role's mean run time here, divided by the "
                      "concurrency reached here (sum of run times / wall time)"}


def section_fast_study(suite: Suite, out: dict[str, Any]) -> None:
    """The cut-down fast study, several runs at once on one GPU, and its full-grid extrapolation."""
    study = cut_down_study(suite)
    jobs = suite.sizes.study_jobs or default_jobs(study)
    start = time.perf_counter()
    run_study(study, jobs=jobs, progress=False)
    wall = time.perf_counter() - start
    out.update(grid="2 alphas x 2 temperatures x 1 seed", jobs=jobs, runs_per_gpu=study.cluster.runs_per_gpu,
               epochs=study.teacher.epochs, wall_s=round(wall, 2),
               verdict_written=StudyLayout.of(study.output).verdict_json.is_file())
    out.update(extrapolate(study, suite.cifar, wall))
    if not suite.quick:
        out["meets_target"] = out["full_grid_estimate_minutes"] < TARGETS["fast_study_full_grid_minutes"]
    suite.log(f"  cut-down study: {out['runs']} runs in {wall:.1f} s with {jobs} at once; full grid about "
              f"{out['full_grid_estimate_minutes']:.1f} min")


# ---- running the sections ---------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[Suite, dict[str, Any]], None]] = {
    "correctness": section_correctness,
    "cluster": section_cluster,
    "throughput": section_throughput,
    "distill": section_distill,
    "fast_preset": section_fast_preset,
    "fast_study": section_fast_study,
    "throughput_compile": section_throughput_compile,
}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (fits, study workers, DataLoader
    workers): on a shared machine, what a section costs apart from waiting for cores."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_section(suite: Suite, name: str) -> None:
    """One section; its failure is recorded (the GPU minutes are scarce: the others still run)."""
    entry: dict[str, Any] = {"status": "running", "result": {}}
    suite.results["sections"][name] = entry
    if suite.over_budget():
        entry.update(status="skipped", reason=f"not started: the {suite.budget_s:.0f} s budget was spent")
        suite.log(f"{name}: skipped (budget spent)")
        suite.save()
        return
    suite.log(f"{name}: start")
    start, cpu_start = time.perf_counter(), cpu_seconds()
    try:
        SECTIONS[name](suite, entry["result"])
        entry["status"] = "ok"
    except (Exception, SystemExit) as err:  # noqa: BLE001 - recorded, the suite goes on
        entry.update(status="error", error=f"{type(err).__name__}: {err}".strip(),
                     traceback=traceback.format_exc(limit=30))
        suite.log(f"{name}: FAILED: {entry['error']}")
    entry["seconds"] = round(time.perf_counter() - start, 2)
    entry["cpu_s"] = round(cpu_seconds() - cpu_start, 2)
    gc.collect()
    if suite.cuda:
        torch.cuda.empty_cache()
    suite.log(f"{name}: {entry['status']} in {entry['seconds']:.1f} s (CPU {entry['cpu_s']:.1f} s)")
    suite.save()


def synthetic_cifar(folder: Path, train: int = 8, test: int = 4, seed: int = 0) -> str:
    """A tiny CIFAR-like image-folder tree of random 32x32 JPEGs (a colour per class plus noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in range(10):
        colour = rng.integers(40, 216, size=3)
        for split, count in (("train", train), ("test", test)):
            (folder / split / f"class{label}").mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(colour + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / split / f"class{label}" / f"{i}.jpg", quality=90)
    return str(folder)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    """The suite's options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cifar", help="JPEG CIFAR-10: a .tar.gz of cifar10-jpeg/{train,test}/<class>/*.jpg or the tree "
                                   "(optional with --quick: a tiny random tree is built)")
    p.add_argument("--out", default="gpu_suite.json", help="the JSON written (and rewritten after every step)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="tiny sizes: the same code paths in about a minute on a CPU")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    p.add_argument("--budget-s", type=float, default=None,
                   help=f"start no section or setup after this many seconds (default {FULL_BUDGET_S:.0f}; "
                        "none with --quick)")
    args = p.parse_args(argv)
    args.sections = list(dict.fromkeys(s.strip() for s in args.sections.split(",") if s.strip()))
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        p.error(f"--sections: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SECTIONS)}")
    if args.cifar is None and not args.quick:
        p.error("--cifar is required (without --quick)")
    if args.cifar is not None and not os.path.exists(args.cifar):
        p.error(f"--cifar: '{args.cifar}' does not exist")
    return args


def main(argv: Optional[list[str]] = None) -> None:
    """Run the chosen sections, writing the JSON after each."""
    args = parse_args(argv)
    device = throughput.resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # both sides of every comparison alike
    quiet_lightning()
    with tempfile.TemporaryDirectory(prefix="kdls-gpu-suite-") as tmp:
        work = Path(tmp)
        cifar = os.path.abspath(args.cifar) if args.cifar else None
        if cifar is None:
            cifar = synthetic_cifar(work / "cifar-synthetic")
            os.environ["KD_LS_CACHE"] = str(work / "cache")  # its decoded copy dies with the tree
        suite = Suite(args, device, cifar, work)
        env = suite.results["environment"]
        suite.log(f"kd-ls GPU suite, {suite.results['mode']} mode on {env['gpu'] or 'cpu'} (torch {env['torch']}, "
                  f"CUDA {env['cuda']}); data {cifar}; budget {suite.budget_s} s; JSON -> {suite.out}")
        for name in args.sections:
            run_section(suite, name)
    suite.log(f"done: {json.dumps(suite.results['headline'])}")


if __name__ == "__main__":
    main()
