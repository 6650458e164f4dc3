"""Training throughput (images/s) of kd-ls's Lightning loop against the common CIFAR recipe.

What is compared, on CIFAR-10 read from the shared JPEG archive (``--data``, decoded once by
``kd_ls.data.ImageFolder``; ``--max-per-class`` subsamples it):

* teachers ``resnet20``, ``resnet56`` and ``fastnet`` (``--teachers``), trained with
  cross-entropy and SGD (nesterov, cosine per step);
* distillation ``resnet56 -> resnet20`` (``--distill``) with the online teacher (its forward
  pass on every batch) and with kd-ls's teacher-logit cache (logits of every training image
  under each of the 162 crop/flip views computed once; the build is timed separately, as
  ``cache_build_s``, and is not part of the images/s).

Each setup runs two ways:

* ``kdls``: a kd-ls ``Teacher`` / ``Student`` module in ``pl.Trainer`` with kd-ls's
  device-resident ``ImageFolder`` data module (whole uint8 split on the device, crop + flip
  and normalisation per batch on the device); no logger, checkpointing, progress bar or
  validation;
* ``common``: the usual recipe: a map-style dataset over the same in-memory uint8 images
  (like ``torchvision.datasets.CIFAR10``: ``PIL.Image.fromarray`` per item), torchvision
  transforms ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``,
  ``Normalize``, a ``torch.utils.data.DataLoader`` (``--workers``, pinned memory on GPUs,
  persistent workers) and a plain PyTorch loop (host-to-device copy, forward, loss,
  backward, step, scheduler step).

Both sides use the same network, batch size, optimizer and schedule, and the same
``--precision`` (``bf16-mixed``: Lightning's precision plugin vs ``torch.autocast``),
``--channels-last`` and ``--compile`` options. Timing: ``--warmup-steps`` untimed steps
(data-loader start-up, cuDNN autotuning, compilation), then ``--steps`` timed optimizer
steps, bracketed by ``torch.cuda.synchronize`` on a GPU; images/s = steps x batch / seconds;
``--repeats`` alternates the ways and reports the median run.
Printed as JSON with every setup's images/s and the ratios kdls / common (GPU targets:
resnet56 >= 3x) and cache / online (GPU target: >= 1.5x). This is a benchmark, not a test.

    # CPU smoke run (small)
    python experiments/bench/throughput.py --device cpu --steps 20 --batch-size 128 \\
        --max-per-class 100 --workers 2
    # GPU (the targets): whole training set, bf16, NHWC
    python experiments/bench/throughput.py --device cuda --steps 200 --batch-size 512 \\
        --precision bf16-mixed --channels-last --workers 8
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_ls.data import ImageFolder
from kd_ls.lightning import ClassifierModule, Student, Teacher
from kd_ls.lightning.optim import lr_factor_fn
from kd_ls.models import create_model
from kd_ls.study.runner import quiet_lightning  # noqa: E402
from timing import sync, timed_steps  # noqa: E402  (experiments/bench/timing.py)

DEFAULT_DATA = os.environ.get("KD_LS_CIFAR10_JPEG")  # the JPEG CIFAR-10 archive or tree
CIFAR_SHAPE = (3, 32, 32)


# ---- shared helpers ----------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    return torch.device(name)


def module_kwargs(**kw: Any) -> dict[str, Any]:
    """ClassifierModule's defaults overridden by `kw`, all passed explicitly (Teacher/Student
    record only the arguments passed to them as hyper-parameters)."""
    sig = inspect.signature(ClassifierModule.__init__)
    defaults = {k: v.default for k, v in sig.parameters.items() if v.default is not inspect.Parameter.empty}
    return {**defaults, **kw}


def make_datamodule(args: argparse.Namespace) -> ImageFolder:
    """kd-ls's CIFAR-10 data module (crop + flip on the device), the benchmark's batch size."""
    return ImageFolder(path=args.data, max_per_class=args.max_per_class, augment=True,
                       batch_size=args.batch_size, drop_last=True)


def recipe_kwargs(args: argparse.Namespace, net: str) -> dict[str, Any]:
    """Module arguments shared by every kd-ls run (and mirrored by the common recipe)."""
    return module_kwargs(net=net, num_classes=10, input_shape=CIFAR_SHAPE, optimizer="sgd", lr=args.lr,
                         momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine",
                         channels_last=args.channels_last, compile=args.compile, measure_clusters=False)


def write_teacher_ckpt(net_name: str, folder: str) -> str:
    """A kd-ls-format checkpoint of a freshly initialised teacher (weights do not affect speed)."""
    torch.manual_seed(1)
    net = create_model(net_name, 10, CIFAR_SHAPE)
    path = os.path.join(folder, f"teacher_{net_name}", "checkpoints", "last.ckpt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"hyper_parameters": {"net": net_name, "num_classes": 10, "input_shape": list(CIFAR_SHAPE),
                                     "net_kwargs": None},
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


# ---- kd-ls side -----------------------------------------------------------------------------------

class StepClock(pl.Callback):
    """Times `steps` optimizer steps after `warmup` untimed ones; also the fit-start gap
    (on_fit_start -> on_train_start: where a Student builds its teacher-logit cache)."""

    def __init__(self, warmup: int, steps: int, device: torch.device) -> None:
        self.warmup, self.steps, self.device = warmup, steps, device
        self.done = 0
        self.start = self.seconds = self.fit_start = self.pre_train_s = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sync(self.device)
        self.fit_start = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sync(self.device)
        self.pre_train_s = time.perf_counter() - self.fit_start

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.done += 1
        if self.done == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()
        elif self.done == self.warmup + self.steps:
            sync(self.device)
            self.seconds = time.perf_counter() - self.start


def run_kdls(args: argparse.Namespace, device: torch.device, module: ClassifierModule, folder: str) -> dict[str, Any]:
    """Fit `module` for warm-up + timed steps on kd-ls's device-resident data."""
    pl.seed_everything(0, verbose=False)
    clock = StepClock(args.warmup_steps, args.steps, device)
    trainer = pl.Trainer(
        accelerator=device.type, devices=1, max_steps=args.warmup_steps + args.steps, max_epochs=-1,
        precision=args.precision, enable_progress_bar=False, logger=False, enable_checkpointing=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=folder,
        benchmark=device.type == "cuda", callbacks=[clock],
    )
    trainer.fit(module, make_datamodule(args))
    images = args.steps * args.batch_size
    return {"images_per_s": images / clock.seconds, "seconds": clock.seconds, "pre_train_s": clock.pre_train_s}


# ---- common recipe side -------------------------------------------------------------------------

class UInt8Images(torch.utils.data.Dataset):
    """In-memory HWC uint8 images, PIL per item, like torchvision.datasets.CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def common_loader(args: argparse.Namespace, device: torch.device) -> torch.utils.data.DataLoader:
    """torchvision transforms + DataLoader over the same training split kd-ls uses."""
    import torchvision.transforms as T

    dm = make_datamodule(args)
    dm.setup()  # no trainer: the splits stay on the CPU
    x, y = dm.splits["train"]
    mean = (x.float().mean((0, 2, 3)) / 255).tolist()
    std = (x.float().std((0, 2, 3)) / 255).tolist()
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    ds = UInt8Images(x.permute(0, 2, 3, 1).contiguous().numpy(), y.numpy(), transform)
    return torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
        pin_memory=device.type == "cuda", persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def prepare_net(args: argparse.Namespace, net: nn.Module, device: torch.device) -> nn.Module:
    """Device, memory format and compilation as the kd-ls side does them."""
    net = net.to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if args.compile:
        net.compile()
    return net


def plain_step(args: argparse.Namespace, device: torch.device, net_name: str,
               teacher_ckpt: Optional[str] = None) -> Callable[[tuple[Tensor, Tensor]], None]:
    """One optimizer step of the plain loop on a device batch (x, y): forward, loss (plus the
    online teacher's soft term with `teacher_ckpt`), backward, step, scheduler step."""
    net = prepare_net(args, create_model(net_name, 10, CIFAR_SHAPE), device).train()
    teacher = None
    if teacher_ckpt is not None:
        from kd_ls.lightning.checkpoint import load_network

        teacher = prepare_net(args, load_network(teacher_ckpt, 10), device).eval()
    total = args.warmup_steps + args.steps
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor_fn("cosine", total, 0, (0.5, 0.75), 0.1))
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16-mixed"
                else nullcontext())
    t, beta = args.temperature, args.beta

    def step(batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        with autocast:
            logits = net(x)
            if teacher is None:
                loss = F.cross_entropy(logits.float(), y)
            else:
                with torch.no_grad():
                    tl = teacher(x).float()
                soft = F.kl_div(F.log_softmax(logits.float() / t, -1), F.softmax(tl / t, -1),
                                reduction="batchmean") * t * t
                loss = (1 - beta) * F.cross_entropy(logits.float(), y) + beta * soft
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    return step


def device_batches(args: argparse.Namespace, loader: Iterable[tuple[Tensor, Tensor]],
                   device: torch.device) -> Callable[[], Iterator[tuple[Tensor, Tensor]]]:
    """A pass over `loader` with each batch copied to `device`, in the networks' memory format."""
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format

    def one_pass() -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in loader:
            yield x.to(device, non_blocking=True).contiguous(memory_format=fmt), y.to(device, non_blocking=True)

    return one_pass


def run_common(args: argparse.Namespace, device: torch.device, net_name: str,
               teacher_ckpt: Optional[str] = None) -> dict[str, Any]:
    """The plain loop: DataLoader batches -> device -> forward/loss/backward/step (+ online teacher)."""
    torch.manual_seed(0)
    loader = common_loader(args, device)
    step = plain_step(args, device, net_name, teacher_ckpt)
    seconds = timed_steps(device_batches(args, loader, device), step, args.warmup_steps, args.steps, device)
    del loader  # stop persistent workers
    return {"images_per_s": args.steps * args.batch_size / seconds, "seconds": seconds}


# ---- the setups --------------------------------------------------------------------------------------

def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median images/s (upper median), plus every repeat's images/s."""
    ordered = sorted(runs, key=lambda r: r["images_per_s"])
    return {**ordered[len(ordered) // 2], "repeats_images_per_s": [round(r["images_per_s"], 2) for r in runs]}


def bench_teacher(args: argparse.Namespace, device: torch.device, net: str, folder: str) -> dict[str, Any]:
    """A teacher trained with cross-entropy: kd-ls vs common recipe, alternating, `--repeats` times."""
    kdls_runs, common_runs = [], []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        kdls_runs.append(run_kdls(args, device, Teacher(**recipe_kwargs(args, net)), folder))
        common_runs.append(run_common(args, device, net))
    kdls, common = median_run(kdls_runs), median_run(common_runs)
    return {"kdls": kdls, "common": common, "ratio_kdls_over_common": kdls["images_per_s"] / common["images_per_s"]}


def bench_distill(args: argparse.Namespace, device: torch.device, folder: str) -> dict[str, Any]:
    """resnet56 -> resnet20: kd-ls online teacher, kd-ls cache, common recipe online teacher."""
    ckpt = write_teacher_ckpt(args.distill_teacher, folder)
    distill = dict(teacher_ckpt=ckpt, temperature=args.temperature, beta=args.beta)
    online_runs, cached_runs, common_runs = [], [], []
    cache_build_s = None
    for _ in range(args.repeats):
        torch.manual_seed(0)
        student = Student(**recipe_kwargs(args, args.distill_student), **distill)
        online_runs.append(run_kdls(args, device, student, folder))
        torch.manual_seed(0)
        student = Student(**recipe_kwargs(args, args.distill_student), **distill, teacher_cache=True)
        cached_runs.append(run_kdls(args, device, student, folder))
        if cache_build_s is None:
            # Built in Student.on_fit_start of the first cached run (later runs load the file);
            # the online run's on_fit_start -> on_train_start gap is the baseline.
            cache_build_s = cached_runs[0]["pre_train_s"] - online_runs[0]["pre_train_s"]
        common_runs.append(run_common(args, device, args.distill_student, ckpt))
    online, cached, common = median_run(online_runs), median_run(cached_runs), median_run(common_runs)
    return {
        "teacher": args.distill_teacher, "student": args.distill_student, "cache_build_s": cache_build_s,
        "cache_views": make_datamodule(args).num_views,
        "kdls_online": online, "kdls_cache": cached, "common_online": common,
        "ratio_cache_over_online": cached["images_per_s"] / online["images_per_s"],
        "ratio_kdls_online_over_common": online["images_per_s"] / common["images_per_s"],
        "ratio_kdls_cache_over_common": cached["images_per_s"] / common["images_per_s"],
    }


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options (also the settings object other benchmarks reuse)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 image-folder tree or .tar.gz (default: $KD_LS_CIFAR10_JPEG)")
    p.add_argument("--max-per-class", type=int, default=None, help="subsample: at most this many images per class")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--steps", type=int, default=100, help="timed optimizer steps per run")
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before the timed ones")
    p.add_argument("--repeats", type=int, default=1, help="runs per setup (alternating); the median is reported")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    p.add_argument("--channels-last", action="store_true", help="NHWC networks and inputs (both sides)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (both sides)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="common recipe DataLoader workers")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--teachers", default="resnet20,resnet56,fastnet", help="comma-separated; empty to skip")
    p.add_argument("--distill", default="resnet56:resnet20", help="TEACHER:STUDENT, or empty to skip")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--beta", type=float, default=0.9)
    return p


def main(argv: Optional[list[str]] = None) -> None:
    """Parse options, run the chosen setups, print JSON."""
    p = build_parser()
    args = p.parse_args(argv)
    if min(args.steps, args.warmup_steps, args.repeats) < 1:
        p.error("--steps, --warmup-steps and --repeats must be >= 1")
    if args.data is None:
        p.error("--data: give the JPEG CIFAR-10 archive or tree (or set KD_LS_CIFAR10_JPEG)")
    if not os.path.exists(args.data):
        p.error(f"--data: '{args.data}' does not exist")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    quiet_lightning()
    probe = make_datamodule(args)
    batches_per_epoch = len(probe.loader("train"))  # decodes the archive once if not cached yet
    train_images = int(probe.splits["train"][1].shape[0])
    if batches_per_epoch < 1:
        p.error("--batch-size is larger than the training split; raise --max-per-class")

    results: dict[str, Any] = {"teachers": {}}
    with tempfile.TemporaryDirectory(prefix="kdls-throughput-") as folder:
        for net in [n for n in args.teachers.split(",") if n]:
            results["teachers"][net] = bench_teacher(args, device, net, folder)
            print(f"{net}: {json.dumps(results['teachers'][net])}", file=sys.stderr)
        if args.distill:
            args.distill_teacher, _, args.distill_student = args.distill.partition(":")
            results["distill"] = bench_distill(args, device, folder)
    summary = {f"teacher_{k}_images_per_s": {"kdls": v["kdls"]["images_per_s"], "common": v["common"]["images_per_s"],
                                             "ratio": v["ratio_kdls_over_common"]}
               for k, v in results["teachers"].items()}
    if "distill" in results:
        d = results["distill"]
        summary["distill_images_per_s"] = {"kdls_online": d["kdls_online"]["images_per_s"],
                                           "kdls_cache": d["kdls_cache"]["images_per_s"],
                                           "common_online": d["common_online"]["images_per_s"],
                                           "cache_over_online": d["ratio_cache_over_online"],
                                           "kdls_online_over_common": d["ratio_kdls_online_over_common"],
                                           "cache_build_s": d["cache_build_s"]}
    out = {
        "benchmark": "kd-ls Lightning loop (device-resident data) vs torchvision transforms + DataLoader + plain loop",
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "torch": torch.__version__, "lightning": pl.__version__,
        "data": args.data, "max_per_class": args.max_per_class, "train_images": train_images,
        "batch_size": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup_steps, "repeats": args.repeats,
        "precision": args.precision, "channels_last": args.channels_last, "compile": args.compile,
        "workers": args.workers, "targets_gpu": {"resnet56_kdls_over_common": 3.0, "cache_over_online": 1.5},
        "summary": summary, "results": results,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
