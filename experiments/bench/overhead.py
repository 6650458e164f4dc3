"""Framework overhead of kd-ls's Lightning training loop against a plain PyTorch loop.

What is compared: the same MLP student (``mlp``, widths [256, 256]) trained on the same
device-resident MNIST-1D batches (``kd_ls.data.MNIST1D``: the plain loop iterates the very
``TensorBatches`` object kd-ls's data module hands Lightning, with the same seed, so both
see identical batches in identical order), with the same optimizer (AdamW, per-step cosine
schedule through ``torch.optim.lr_scheduler.LambdaLR``) for the same number of steps, in
two setups:

* ``student_alone``: cross-entropy on the labels (kd-ls: ``Student`` without a teacher);
* ``distill_cache``: Hinton distillation from a conv1d teacher whose logits are precomputed
  once (kd-ls: ``Student(teacher_ckpt=..., teacher_cache=True)``; the plain loop looks up
  the same cached logits tensor by sample index and view).

kd-ls side: ``pl.Trainer(enable_progress_bar=False, logger=False, enable_checkpointing=False,
num_sanity_val_steps=0, limit_val_batches=0, enable_model_summary=False)`` plus any flags
given with ``--trainer-flag``, and the student's ``steps_per_call`` from
configs/student/mnist1d.yaml (``--steps-per-call 1`` gives Lightning's automatic optimization,
one training_step per optimizer step), given to the data module too, as the CLI's link does
(built without it, a data module handed one batch per call: the 1.31x this benchmark showed
from 3bd0f52, when the link moved to the CLI, until the module started passing it on itself). The plain side writes the loss with ``torch.nn.functional``
(``--plain-loss torch``, what a user would write) or calls kd-ls's own loss functions
(``--plain-loss kdls``, which isolates the cost of Lightning and the module's hooks from
that of kd-ls's loss code).

A third variant, ``lightning_bare``, is a minimal LightningModule (the same net, loss,
optimizer and schedule; ``training_step`` returns the loss, nothing else) on kd-ls's data
module in the same Trainer: plain -> bare is what Lightning and the data module's batch hook
cost per step, bare -> kd-ls what kd-ls's module code costs.

Timing: only the training loop. Each fit runs ``--warmup-epochs`` untimed epochs first; the
clock starts at the first timed epoch's ``on_train_epoch_start`` and stops at
``on_train_end`` (so kd-ls's per-epoch metric computation is included), and the plain loop
is timed over the same epochs. Data loading, model building, the teacher checkpoint and the
logit-cache build are outside the clock. Repeats alternate plain / bare / kd-ls so drifting
machine load affects all alike; the JSON reports every repeat, the medians and the ratio
kd-ls / plain (the issue's target: <= 1.10). Times are ``torch.cuda.synchronize``d on a
GPU. The JSON is printed and written to results/overhead.json (``--out``). Process CPU time is reported beside wall-clock time: with one thread (the default,
``--threads 1``) it barely depends on other processes time-sharing the machine. The plain
loop runs without the PYTORCH_NVML_BASED_CUDA_CHECK=1 that importing Lightning sets
(``--plain-env``; see NVML_CHECK_BEFORE_LIGHTNING); kd-ls unsets it too where no NVIDIA driver
is installed (kd_ls/lightning/internals.py), so on such a machine both loops run alike. This is a benchmark,
not a test.

    # CPU, one thread, default settings (about a minute)
    python experiments/bench/overhead.py
    # the same with one optimizer step per Lightning call (automatic optimization)
    python experiments/bench/overhead.py --steps-per-call 1
    # more repeats, larger batches, a Trainer flag, cProfile of one extra kd-ls fit per setup
    python experiments/bench/overhead.py --repeats 9 --batch-size 512 \
        --trainer-flag log_every_n_steps=1000 --profile /tmp/overhead.prof
    # GPU
    python experiments/bench/overhead.py --device cuda --threads 0
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Optional

# Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1, after which every
# torch.cuda.is_available() call (AdamW.step makes one per step) dlopens NVML, ~50 us on a
# machine without a GPU. A plain script never imports Lightning, so the plain loop runs with
# the variable as it was before (see run_plain).
NVML_CHECK_BEFORE_LIGHTNING = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from kd_ls.data import MNIST1D  # noqa: E402
from kd_ls.lightning import ClassifierModule, Student, Teacher
from kd_ls.lightning.optim import lr_factor_fn  # noqa: E402
from kd_ls.losses import distillation_loss, label_smoothing_cross_entropy  # noqa: E402
from kd_ls.study.runner import quiet_lightning  # noqa: E402
from timing import resident, sync  # noqa: E402  (experiments/bench/timing.py)

SETUPS = ("student_alone", "distill_cache")
STUDENT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "student", "mnist1d.yaml")
STUDENT_STEPS_PER_CALL = yaml.safe_load(open(STUDENT_CONFIG))["model"]["init_args"].get("steps_per_call", 1)


def parse_flags(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` Trainer flags; values parsed as Python literals when possible."""
    flags = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            flags[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            flags[key] = value
    return flags


def make_data(args: argparse.Namespace, device: torch.device) -> MNIST1D:
    """An MNIST-1D data module whose splits already sit on `device` (no Trainer needed)."""
    return resident(MNIST1D(num_samples=args.num_samples, batch_size=args.batch_size), device)


def trainer_kwargs(args: argparse.Namespace, device: torch.device, epochs: int) -> dict[str, Any]:
    """Trainer arguments: everything that is not the training loop switched off."""
    kw: dict[str, Any] = dict(
        max_epochs=epochs, accelerator=device.type, devices=1, enable_progress_bar=False, logger=False,
        enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0, enable_model_summary=False,
    )
    kw.update(parse_flags(args.trainer_flag))
    return kw


def module_kwargs(**kw: Any) -> dict[str, Any]:
    """ClassifierModule's defaults overridden by `kw`, all passed explicitly.

    Teacher/Student forward **kwargs to ClassifierModule, so save_hyperparameters records only
    the arguments actually passed, and configure_optimizers then misses e.g. `warmup_epochs`
    (the CLI always passes every argument, Python callers must do the same)."""
    sig = inspect.signature(ClassifierModule.__init__)
    defaults = {k: v.default for k, v in sig.parameters.items() if v.default is not inspect.Parameter.empty}
    return {**defaults, **kw}


def make_teacher_ckpt(args: argparse.Namespace, device: torch.device, folder: str) -> str:
    """Train a conv1d kd-ls Teacher briefly and save its checkpoint (a realistic teacher)."""
    pl.seed_everything(123, verbose=False)
    dm = MNIST1D(num_samples=args.num_samples, batch_size=args.batch_size)
    teacher = Teacher(**module_kwargs(net="conv1d", num_classes=10, input_shape=(1, 40), optimizer="adamw",
                                      lr=3e-3, weight_decay=0.05, measure_clusters=False))
    kw = trainer_kwargs(args, device, args.teacher_epochs)
    kw["default_root_dir"] = folder
    trainer = pl.Trainer(**kw)
    trainer.fit(teacher, dm)
    # <folder>/teacher/checkpoints/last.ckpt: the cache file goes to <folder>/teacher/logit_cache
    path = os.path.join(folder, "teacher", "checkpoints", "last.ckpt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    trainer.save_checkpoint(path)
    return path


class EpochClock(pl.Callback):
    """Wall-clock from the start of epoch `first_timed` to the end of training."""

    def __init__(self, first_timed: int, device: torch.device) -> None:
        self.first_timed, self.device = first_timed, device
        self.start: Optional[float] = None
        self.seconds: Optional[float] = None
        self.cpu_start: Optional[float] = None
        self.cpu_seconds: Optional[float] = None
        self.steps_timed = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.first_timed:
            sync(self.device)
            self.start, self.cpu_start = time.perf_counter(), time.process_time()
            self.steps_at_start = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
        self.steps_timed = trainer.global_step - self.steps_at_start


def student_kwargs(args: argparse.Namespace, setup: str, teacher_ckpt: Optional[str]) -> dict[str, Any]:
    """The Student's arguments for a setup (identical hyper-parameters to the plain loop)."""
    kw = module_kwargs(net="mlp", net_kwargs={"widths": [256, 256]}, num_classes=10, input_shape=(1, 40),
                       optimizer="adamw", lr=args.lr, weight_decay=0.05, schedule="cosine", measure_clusters=False,
                       steps_per_call=args.steps_per_call)
    if setup == "distill_cache":
        kw.update(teacher_ckpt=teacher_ckpt, teacher_cache=True, temperature=args.temperature, beta=args.beta)
    return kw


class BareModule(pl.LightningModule):
    """The least a LightningModule needs: the same net, loss, optimizer and schedule, nothing else.

    Run on kd-ls's data module like the Student, it separates Lightning's own per-step cost
    (plain -> bare) from that of kd-ls's module code (bare -> kd-ls)."""

    def __init__(self, net: nn.Module, loss_fn: Callable[[Tensor, Tensor, Optional[Tensor]], Tensor],
                 cache: Optional[Tensor], lr: float) -> None:
        super().__init__()
        self.net, self.loss_fn, self.cache, self.lr = net, loss_fn, cache, lr

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, y, idx, view = batch
        return self.loss_fn(self.net(x), y, None if self.cache is None else self.cache[idx, view])

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=0.05)
        total = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor_fn("cosine", total, 0, (0.5, 0.75), 0.1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def run_lightning(args: argparse.Namespace, setup: str, device: torch.device, teacher_ckpt: Optional[str],
                  folder: str, bare_cache: Optional[Tensor] = None, bare: bool = False,
                  profiler: Optional[Any] = None) -> dict[str, Any]:
    """One Lightning fit (kd-ls's Student, or BareModule when `bare`) on kd-ls's MNIST-1D data
    module; seconds of the timed epochs and the number of optimizer steps in them."""
    epochs = args.warmup_epochs + args.epochs
    pl.seed_everything(args.seed, verbose=False)
    # Lightning sets it up on `device`. The kd-ls side's data module groups batches as the CLI's link
    # (model.steps_per_call -> data.steps_per_call) makes it; BareModule steps one batch per call.
    dm = MNIST1D(num_samples=args.num_samples, batch_size=args.batch_size,
                 steps_per_call=1 if bare else args.steps_per_call)
    if bare:
        net = Student(**student_kwargs(args, "student_alone", None)).net
        module: pl.LightningModule = BareModule(net, plain_loss_fn(args, setup), bare_cache, args.lr)
    else:
        module = Student(**student_kwargs(args, setup, teacher_ckpt))
    clock = EpochClock(args.warmup_epochs, device)
    kw = trainer_kwargs(args, device, epochs)
    kw["default_root_dir"] = folder
    kw["callbacks"] = [clock]
    trainer = pl.Trainer(**kw)
    if profiler is not None:
        profiler.enable()
    trainer.fit(module, dm)
    if profiler is not None:
        profiler.disable()
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "steps": clock.steps_timed,
            "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan")))}


def plain_loss_fn(args: argparse.Namespace, setup: str) -> Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]:
    """The plain loop's loss: hand-written with torch.nn.functional, or kd-ls's loss functions."""
    t, beta = args.temperature, args.beta
    if args.plain_loss == "kdls":
        if setup == "student_alone":
            return lambda logits, y, _t: label_smoothing_cross_entropy(logits, y, 0.0)
        return lambda logits, y, tl: distillation_loss(logits, tl, y, t, beta, True)
    if setup == "student_alone":
        return lambda logits, y, _t: F.cross_entropy(logits, y)

    def kd(logits: Tensor, y: Tensor, tl: Tensor) -> Tensor:
        soft = F.kl_div(F.log_softmax(logits / t, -1), F.softmax(tl / t, -1), reduction="batchmean") * t * t
        return (1 - beta) * F.cross_entropy(logits, y) + beta * soft

    return kd


class plain_environment:
    """Context: PYTORCH_NVML_BASED_CUDA_CHECK as it was before Lightning was imported."""

    def __enter__(self) -> None:
        self.saved = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
        set_env("PYTORCH_NVML_BASED_CUDA_CHECK", NVML_CHECK_BEFORE_LIGHTNING)

    def __exit__(self, *exc: Any) -> None:
        set_env("PYTORCH_NVML_BASED_CUDA_CHECK", self.saved)


def set_env(name: str, value: Optional[str]) -> None:
    """Set or (None) unset an environment variable."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def run_plain(args: argparse.Namespace, setup: str, device: torch.device, cache: Optional[Tensor]) -> dict[str, Any]:
    """The plain PyTorch loop over the same batches, model, optimizer, schedule and steps."""
    if args.plain_env == "plain":
        with plain_environment():
            return _run_plain(args, setup, device, cache)
    return _run_plain(args, setup, device, cache)


def _run_plain(args: argparse.Namespace, setup: str, device: torch.device, cache: Optional[Tensor]) -> dict[str, Any]:
    epochs = args.warmup_epochs + args.epochs
    pl.seed_everything(args.seed, verbose=False)
    dm = make_data(args, device)
    # Same construction (and RNG consumption) as the Student, so the initial weights match.
    net: nn.Module = Student(**student_kwargs(args, "student_alone", None)).net.to(device)
    batches = dm.train_dataloader()
    total = epochs * len(batches)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor_fn("cosine", total, 0, (0.5, 0.75), 0.1))
    loss_fn = plain_loss_fn(args, setup)
    net.train()
    start, cpu_start, steps, loss = 0.0, 0.0, 0, torch.zeros(())
    for epoch in range(epochs):
        if epoch == args.warmup_epochs:
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
        for x, y, idx, view in batches:
            x = dm.normalize(x)
            logits = net(x)
            loss = loss_fn(logits, y, None if cache is None else cache[idx, view])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            steps += epoch >= args.warmup_epochs
    sync(device)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start, "steps": steps,
            "final_loss": loss.detach().item()}


def build_cache(args: argparse.Namespace, device: torch.device, teacher_ckpt: str) -> tuple[Tensor, float]:
    """The teacher-logit cache through kd-ls itself (writes the shared file once); build seconds."""
    from kd_ls.lightning.checkpoint import load_network
    from kd_ls.lightning.teacher_cache import compute_logit_cache

    dm = make_data(args, device)
    teacher = load_network(teacher_ckpt, 10).to(device)
    sync(device)
    t0 = time.perf_counter()
    cache = compute_logit_cache(teacher, dm)
    sync(device)
    return cache, time.perf_counter() - t0


def summarise(times: list[float]) -> dict[str, Any]:
    """Median, min and all repeat times."""
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats_s": [round(t, 4) for t in times]}


def main(argv: Optional[list[str]] = None) -> None:
    """Parse options, run every setup's repeats alternating plain / bare / kd-ls, print JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated subset of {SETUPS}")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10, help="timed epochs per fit (fewer: noisier ratios)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs before the timed ones")
    p.add_argument("--num-samples", type=int, default=10000, help="MNIST-1D samples (72%% become train)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps-per-call", type=int, default=STUDENT_STEPS_PER_CALL,
                   help="kd-ls side's model.steps_per_call (default: configs/student/mnist1d.yaml's, "
                        f"{STUDENT_STEPS_PER_CALL}); 1 is Lightning's automatic optimization")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--beta", type=float, default=0.9)
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1: steadier on a shared CPU, and the CPU-time column "
                        "is then meaningful; 0 keeps torch's default)")
    p.add_argument("--plain-loss", default="torch", choices=["torch", "kdls"],
                   help="plain loop's loss: torch.nn.functional (default) or kd-ls's loss functions")
    p.add_argument("--plain-env", default="plain", choices=["plain", "lightning"],
                   help="plain loop's environment: as without Lightning (default), or with the "
                        "PYTORCH_NVML_BASED_CUDA_CHECK=1 that importing Lightning sets")
    p.add_argument("--trainer-flag", action="append", default=[], metavar="KEY=VALUE",
                   help="extra pl.Trainer argument for the kd-ls side, e.g. log_every_n_steps=1000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", metavar="FILE", help="cProfile one extra kd-ls fit per setup into FILE.<setup>")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "overhead.json"),
                   help="where the JSON goes too (default: results/overhead.json beside this script; '' for none)")
    args = p.parse_args(argv if argv is not None else sys.argv[1:])
    load_before = [round(x, 2) for x in os.getloadavg()]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    setups = [s for s in args.setups.split(",") if s]
    for s in setups:
        if s not in SETUPS:
            p.error(f"--setups: unknown setup {s!r}; choose from {SETUPS}")
    quiet_lightning()

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kdls-overhead-") as folder:
        teacher_ckpt, cache, cache_s = None, None, None
        if "distill_cache" in setups:
            teacher_ckpt = make_teacher_ckpt(args, device, folder)
            cache, cache_s = build_cache(args, device, teacher_ckpt)
        for setup in setups:
            times: dict[str, list[float]] = {"plain": [], "lightning_bare": [], "kdls": []}
            cpu: dict[str, list[float]] = {"plain": [], "lightning_bare": [], "kdls": []}
            steps = {}
            setup_cache = cache if setup == "distill_cache" else None
            for r in range(args.repeats):
                a = run_plain(args, setup, device, setup_cache)
                c = run_lightning(args, setup, device, None, os.path.join(folder, f"bare{r}"), setup_cache, bare=True)
                b = run_lightning(args, setup, device, teacher_ckpt, os.path.join(folder, f"run{r}"))
                times["plain"].append(a["seconds"])
                times["lightning_bare"].append(c["seconds"])
                times["kdls"].append(b["seconds"])
                for key, run in (("plain", a), ("lightning_bare", c), ("kdls", b)):
                    cpu[key].append(run["cpu_seconds"])
                steps = {"steps_plain": a["steps"], "steps_bare": c["steps"], "steps_kdls": b["steps"],
                         "plain_final_loss": a["final_loss"], "kdls_final_epoch_loss": b["final_loss"]}
            if not steps["steps_plain"] == steps["steps_bare"] == steps["steps_kdls"]:
                print(f"warning: {setup}: step counts differ {steps}", file=sys.stderr)
            med = {k: statistics.median(v) for k, v in times.items()}
            n = steps["steps_kdls"]
            res: dict[str, Any] = {k: summarise(v) for k, v in times.items()}
            res.update(steps)
            res["ratio_kdls_over_plain"] = med["kdls"] / med["plain"]
            res["ratio_per_repeat"] = [round(k / q, 4) for k, q in zip(times["kdls"], times["plain"])]
            res["ratio_bare_over_plain"] = med["lightning_bare"] / med["plain"]
            res["ratio_kdls_over_bare"] = med["kdls"] / med["lightning_bare"]
            res["us_per_step"] = {k: 1e6 * v / n for k, v in med.items()}
            # Process CPU time: with one thread (--threads 1) it barely depends on other load.
            cmed = {k: statistics.median(v) for k, v in cpu.items()}
            res["cpu_time"] = {"median_s": cmed, "ratio_kdls_over_plain": cmed["kdls"] / cmed["plain"],
                               "ratio_bare_over_plain": cmed["lightning_bare"] / cmed["plain"],
                               "ratio_kdls_over_bare": cmed["kdls"] / cmed["lightning_bare"],
                               "us_per_step": {k: 1e6 * v / n for k, v in cmed.items()}}
            res["overhead_us_per_step"] = {"lightning_and_datamodule": 1e6 * (med["lightning_bare"] - med["plain"]) / n,
                                           "kdls_module": 1e6 * (med["kdls"] - med["lightning_bare"]) / n}
            if setup == "distill_cache":
                res["cache_build_s"] = cache_s
            results[setup] = res
            if args.profile:
                import cProfile

                prof = cProfile.Profile()
                run_lightning(args, setup, device, teacher_ckpt, os.path.join(folder, "profile"), profiler=prof)
                prof.dump_stats(f"{args.profile}.{setup}")
    out = {
        "benchmark": "kd-ls Lightning loop vs plain PyTorch loop (MNIST-1D, mlp [256,256], AdamW + cosine/step)",
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "lightning": pl.__version__, "batch_size": args.batch_size, "epochs_timed": args.epochs,
        "warmup_epochs": args.warmup_epochs, "repeats": args.repeats, "steps_per_call": args.steps_per_call,
        "plain_loss": args.plain_loss,
        "plain_env": args.plain_env,
        "trainer_flags": parse_flags(args.trainer_flag), "target_ratio": 1.10, "results": results,
        "command": " ".join(["python experiments/bench/overhead.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    text = json.dumps(out, indent=2)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
