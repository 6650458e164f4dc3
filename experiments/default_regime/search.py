"""Search for a default MNIST-1D study setting in the regime of Mueller et al. 2019.

Mueller et al. 2019 claim that label-smoothed teachers make worse students. Testing that
claim needs a setting where distillation from a *plain* teacher clearly helps. This script
trains, for one named setting and three seeds:

* a teacher (plain, alpha = 0; optionally label-smoothed ones with ``--alphas``),
* the student trained alone (cross-entropy, same augmentation),
* the student distilled from the teacher of the same seed at every temperature (from the
  label-smoothed teachers too with ``--distil-alphas``, which also prints issue 20's
  precondition and primary),

and prints teacher accuracy, student-alone accuracy, distilled accuracy per T, the paired
gain (distilled - alone) with a 95% Student-t interval over seeds, wall time per run, the
projected cost of the full default study (51 runs, 2 in parallel) and, with
``--convergence``, the same students trained for twice the epochs.

Times are CPU seconds of the (single-threaded) process, ``time.process_time``, which on a
shared machine approximates the wall time of a run on an idle core.

Everything is plain PyTorch on whole-split tensors (no DataLoader, no Lightning), one thread.
Models and losses come from kd_ls (``create_model``, ``LabelSmoothingLoss``,
``distillation_loss``). Optimiser: AdamW with a cosine schedule stepped per batch (kd-ls's
recipe). Test accuracy is read at the last epoch; no early stopping, no selection on test.

Augmentation (``shift > 0``): each training sample is seen under one of V = 2*shift + 1
discrete views per epoch, view v shifting the raw signal by d = v - shift positions
(circularly, ``torch.roll``, or with zero fill, ``shift_mode='zero'``), then normalising.
Teacher and student see the same view; the teacher's logits are cached per (sample, view)
once after teacher training, so a distilled student costs the same as one trained alone.
With ``student_shift`` set, students see only the views shifted by at most that much (0: the
unshifted signals only) while the teacher trains on all V views (Hinton et al. 2015's MNIST
recipe: a jittered teacher, an unjittered student).
Same seed = same student init, same data order and same view draws for alone and distilled.

Data split as in kd_ls.data: mnist1d ``make_dataset(num_samples, seed=42, train_split=0.8)``;
10% of the training part held out as val (split seed 0, unused here); per-channel
normalisation with the train split's mean and std.

Usage (from the repository root)::

    python experiments/default_regime/search.py --list
    python experiments/default_regime/search.py --setting mlp_shift4 [--convergence] [--alphas 0 0.1 0.3]
    python experiments/default_regime/search.py --setting mlp_shift4 --set student_epochs=60 lr=0.002
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor, nn

from kd_ls.losses import LabelSmoothingLoss, distillation_loss
from kd_ls.models import create_model

HERE = Path(__file__).resolve().parent
DATA_CACHE = Path("/tmp/kd_ls_mnist1d_cache")


@dataclass
class Setting:
    """One candidate default study setting."""

    num_samples: int = 4000
    teacher: str = "conv1d"
    teacher_kwargs: dict[str, Any] = field(default_factory=dict)
    teacher_epochs: int = 15
    teacher_lr: float = 3e-3
    teacher_wd: float = 0.05
    student: str = "mlp"
    student_kwargs: dict[str, Any] = field(default_factory=lambda: {"widths": [256, 256]})
    student_epochs: int = 15
    lr: float = 3e-3
    wd: float = 0.05
    batch_size: int = 128
    student_batch_size: int | None = None  # None: batch_size (the teacher's)
    shift: int = 0  # max shift; V = 2 * shift + 1 views
    shift_mode: str = "circular"  # circular | zero
    student_shift: int | None = None  # max shift the students see (None: same as the teacher's)
    beta: float = 1.0
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    seeds: tuple[int, ...] = (0, 1, 2)

    @property
    def student_batch(self) -> int:
        return self.batch_size if self.student_batch_size is None else self.student_batch_size

    @property
    def num_views(self) -> int:
        return 2 * self.shift + 1


def _s(**kw: Any) -> Setting:
    return Setting(**kw)


SMALL_CONV = {"channels": 8, "depth": 3, "hidden": 32}
SETTINGS: dict[str, Setting] = {
    # The current kd-ls default (baseline for the table).
    "current": _s(),
    "mlp_4k_long": _s(teacher_epochs=30, student_epochs=60),
    "mlp_4k_shift4": _s(teacher_epochs=30, student_epochs=60, shift=4),
    "mlp_4k_shift8": _s(teacher_epochs=30, student_epochs=60, shift=8),
    "mlp_10k_shift4": _s(num_samples=10000, teacher_epochs=30, student_epochs=40, shift=4),
    "mlp_10k_shift8": _s(num_samples=10000, teacher_epochs=30, student_epochs=40, shift=8),
    "conv8_4k_shift4": _s(teacher_epochs=30, student="conv1d", student_kwargs=SMALL_CONV, student_epochs=40, shift=4),
    "conv8_10k_shift4": _s(num_samples=10000, teacher_epochs=30, student="conv1d", student_kwargs=SMALL_CONV,
                           student_epochs=30, shift=4),
    # Recommended: conv1d teacher trained on circular shifts (9 views), MLP student on unshifted signals.
    "mlp512_6k_tshift4": _s(num_samples=6000, teacher_epochs=20, shift=4, student_shift=0,
                            student_kwargs={"widths": [512, 512]}, student_epochs=40),
    # Issue 20: more data (teacher >= 97%), patient students (80 epochs at batch 256), T in {1, 2, 4}.
    "mlp512_8k_tshift4_80ep": _s(num_samples=8000, teacher_epochs=20, shift=4, student_shift=0,
                                 student_kwargs={"widths": [512, 512]}, student_epochs=80, student_batch_size=256,
                                 temperatures=(1.0, 2.0, 4.0)),
}


# ---- data -------------------------------------------------------------------------------------
def mnist1d_arrays(num_samples: int, seed: int = 42, train_split: float = 0.8) -> dict[str, Tensor]:
    """MNIST-1D as kd_ls.data.synthetic generates it, cached on disk under /tmp."""
    DATA_CACHE.mkdir(parents=True, exist_ok=True)
    path = DATA_CACHE / f"mnist1d_{num_samples}_{seed}_{train_split}.pt"
    if path.exists():
        return torch.load(path)
    import mnist1d.data

    args = mnist1d.data.get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
    d = mnist1d.data.make_dataset(args)
    out = {
        "x": torch.from_numpy(np.ascontiguousarray(d["x"], dtype=np.float32))[:, None, :],
        "y": torch.from_numpy(np.asarray(d["y"], dtype=np.int64)),
        "x_test": torch.from_numpy(np.ascontiguousarray(d["x_test"], dtype=np.float32))[:, None, :],
        "y_test": torch.from_numpy(np.asarray(d["y_test"], dtype=np.int64)),
    }
    torch.save(out, path)
    return out


def shift_views(x: Tensor, shift: int, mode: str) -> Tensor:
    """All V = 2*shift+1 views of raw inputs x (N, C, L): (V, N, C, L); view v shifts by v - shift."""
    views = []
    for d in range(-shift, shift + 1):
        if mode == "circular":
            views.append(torch.roll(x, d, dims=-1))
        elif mode == "zero":
            z = torch.zeros_like(x)
            if d > 0:
                z[..., d:] = x[..., :-d]
            elif d < 0:
                z[..., :d] = x[..., -d:]
            else:
                z = x.clone()
            views.append(z)
        else:
            raise ValueError(f"shift_mode must be circular or zero, got {mode!r}")
    return torch.stack(views)


@dataclass
class Data:
    train_views: Tensor  # (V, N, 1, 40), normalised
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor


def load_data(s: Setting) -> Data:
    a = mnist1d_arrays(s.num_samples)
    n_val = max(1, int(round(0.1 * a["y"].shape[0])))
    order = torch.randperm(a["y"].shape[0], generator=torch.Generator().manual_seed(0))
    train_idx = order[n_val:].sort().values
    x, y = a["x"][train_idx], a["y"][train_idx]
    mean, std = x.mean(), x.std().clamp_min(1e-8)
    views = (shift_views(x, s.shift, s.shift_mode) - mean) / std
    return Data(views.contiguous(), y, (a["x_test"] - mean) / std, a["y_test"])


# ---- training ---------------------------------------------------------------------------------
def build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    return create_model(name, 10, (1, 40), **kwargs)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    return float((model(x).argmax(-1) == y).float().mean()) * 100


@torch.no_grad()
def cache_logits(model: nn.Module, views: Tensor) -> Tensor:
    """Teacher logits for every (view, sample): (V, N, 10)."""
    model.eval()
    v, n = views.shape[:2]
    return torch.cat([model(chunk) for chunk in views.reshape(v * n, *views.shape[2:]).split(4096)]).reshape(v, n, -1)


def train(
    model: nn.Module,
    data: Data,
    epochs: int,
    lr: float,
    wd: float,
    batch_size: int,
    seed: int,
    alpha: float = 0.0,
    teacher_logits: Tensor | None = None,
    temperature: float = 4.0,
    beta: float = 1.0,
    max_shift: int | None = None,
) -> float:
    """Train in place (AdamW, per-step cosine); returns last-epoch test accuracy (%)."""
    v, n = data.train_views.shape[:2]
    center = v // 2
    m = center if max_shift is None else min(max_shift, center)  # views center-m .. center+m
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0))))
    ce = LabelSmoothingLoss(10, alpha=alpha)
    g = torch.Generator().manual_seed(seed)  # data order and views: the seed alone
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        view = torch.randint(center - m, center + m + 1, (n,), generator=g)
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            vi = view[idx]
            x, y = data.train_views[vi, idx], data.train_y[idx]
            out = model(x)
            if teacher_logits is None:
                loss = ce(out, y)
            else:
                loss = distillation_loss(out, teacher_logits[vi, idx], y, temperature=temperature, beta=beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    TRAIN_ACC.append(accuracy(model, data.train_views[data.train_views.shape[0] // 2], data.train_y))
    return accuracy(model, data.test_x, data.test_y)


TRAIN_ACC: list[float] = []  # diagnostic: last-epoch accuracy on the unshifted train split, per run


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of b - a with its 95% Student-t interval over seeds."""
    d = np.asarray(b) - np.asarray(a)
    m = float(d.mean())
    if len(d) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return m, m - h, m + h


def run_students(s: Setting, data: Data, caches: dict[float, dict[int, Tensor]], epochs: int,
                 temps: tuple[float, ...], timings: list[float]) -> dict[str, list[float]]:
    """Student alone and distilled from each cached teacher per T, for every seed.

    Keys: 'alone', 'T=<t>' (plain teacher) and 'a=<alpha> T=<t>' (label-smoothed teacher)."""
    res: dict[str, list[float]] = {"alone": []}
    TRAIN_ACC.clear()
    for seed in s.seeds:
        t0 = time.process_time()
        torch.manual_seed(seed)
        res["alone"].append(train(build(s.student, s.student_kwargs), data, epochs, s.lr, s.wd, s.student_batch, seed,
                                  max_shift=s.student_shift))
        timings.append(time.process_time() - t0)
        for alpha, by_seed in caches.items():
            for t in temps:
                t0 = time.process_time()
                torch.manual_seed(seed)  # same init as the student alone
                acc = train(build(s.student, s.student_kwargs), data, epochs, s.lr, s.wd, s.student_batch, seed,
                            teacher_logits=by_seed[seed], temperature=t, beta=s.beta, max_shift=s.student_shift)
                timings.append(time.process_time() - t0)
                res.setdefault(student_key(alpha, t), []).append(acc)
    keys = list(res)
    train_acc = {k: float(np.mean(TRAIN_ACC[i::len(keys)])) for i, k in enumerate(keys)}
    print("  train acc (unshifted train split): " + ", ".join(f"{k} {v:.1f}" for k, v in train_acc.items()), flush=True)
    return res


def student_key(alpha: float, t: float) -> str:
    """Result key of a student distilled from the teacher with smoothing alpha at temperature t."""
    return f"T={t:g}" if alpha == 0.0 else f"a={alpha:g} T={t:g}"


def decisions(res: dict[str, list[float]], alphas: list[float], temps: tuple[float, ...]) -> dict[str, Any]:
    """Issue 20's precondition and primary, per seed then a t interval over seeds.

    Precondition: mean over T of plain-teacher students minus the student alone.
    Primary: mean over LS alphas and T of LS-teacher students minus mean over T of plain-teacher students."""
    plain = np.mean([res[student_key(0.0, t)] for t in temps], axis=0)
    out = {"precondition": paired(res["alone"], list(plain))}
    ls = [a for a in alphas if a != 0.0]
    if ls:
        smoothed = np.mean([res[student_key(a, t)] for a in ls for t in temps], axis=0)
        out["primary"] = paired(list(plain), list(smoothed))
    for name, (m, lo, hi) in out.items():
        print(f"  {name}: {m:+.2f} [{lo:+.2f}, {hi:+.2f}] (n={len(res['alone'])})"
              f"{'  decided' if lo > 0 or hi < 0 else ''}", flush=True)
    return {k: {"estimate": v[0], "ci": [v[1], v[2]]} for k, v in out.items()}


def fmt(xs: list[float]) -> str:
    return f"{np.mean(xs):6.2f} ±{np.std(xs, ddof=1) if len(xs) > 1 else 0:4.2f}"


def report(res: dict[str, list[float]], title: str) -> dict[str, Any]:
    print(f"  {title}: alone {fmt(res['alone'])}  [{', '.join(f'{a:.2f}' for a in res['alone'])}]")
    out: dict[str, Any] = {"alone": res["alone"]}
    for k, accs in res.items():
        if k == "alone":
            continue
        m, lo, hi = paired(res["alone"], accs)
        flag = "  *" if lo > 0 and m >= 1 else ("  +" if lo > 0 else "")
        print(f"    {k:6s} distilled {fmt(accs)}  gain {m:+6.2f} [{lo:+6.2f}, {hi:+6.2f}]{flag}")
        out[k] = {"accs": accs, "gain": m, "ci": [lo, hi]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Usage", 1)[1])
    p.add_argument("--setting", default="current", help="a name from --list")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override Setting fields (Python literals), e.g. student_epochs=60 shift=4")
    p.add_argument("--alphas", nargs="*", type=float, default=[0.0],
                   help="teacher label-smoothing values to train")
    p.add_argument("--distil-alphas", nargs="*", type=float, default=[0.0],
                   help="teachers (by alpha, from --alphas) whose students are trained; 0 and an LS alpha give "
                        "the primary")
    p.add_argument("--convergence", action="store_true", help="also train every student with doubled epochs")
    p.add_argument("--conv-temps", nargs="*", type=float, default=None,
                   help="temperatures for the convergence check (default: all)")
    p.add_argument("--teachers-only", action="store_true", help="train the teachers only (a quick probe)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--list", action="store_true", help="list the named settings and exit")
    p.add_argument("--results", default=str(HERE / "results.jsonl"), help="append a JSON line of results here")
    args = p.parse_args()
    if args.list:
        for k, v in SETTINGS.items():
            print(k, dataclasses.asdict(v))
        return
    torch.set_num_threads(args.threads)
    s = dataclasses.replace(SETTINGS[args.setting])
    for kv in args.set:
        key, val = kv.split("=", 1)
        if not hasattr(s, key):
            raise SystemExit(f"unknown Setting field {key!r}")
        setattr(s, key, ast.literal_eval(val))
    name = args.setting + ("" if not args.set else " [" + " ".join(args.set) + "]")
    print(f"== {name}: {dataclasses.asdict(s)}", flush=True)
    data = load_data(s)
    print(f"  train {tuple(data.train_views.shape)} test {tuple(data.test_x.shape)}", flush=True)

    teacher_t, cache_t, student_t = [], [], []
    teachers: dict[float, list[float]] = {}
    caches: dict[float, dict[int, Tensor]] = {}
    wall0 = time.time()
    for alpha in args.alphas:
        for seed in s.seeds:
            t0 = time.process_time()
            torch.manual_seed(1000 + seed)
            tm = build(s.teacher, s.teacher_kwargs)
            acc = train(tm, data, s.teacher_epochs, s.teacher_lr, s.teacher_wd, s.batch_size, 1000 + seed, alpha=alpha)
            teacher_t.append(time.process_time() - t0)
            teachers.setdefault(alpha, []).append(acc)
            if alpha in args.distil_alphas:
                t0 = time.process_time()
                caches.setdefault(alpha, {})[seed] = cache_logits(tm, data.train_views)
                cache_t.append(time.process_time() - t0)
        print(f"  teacher alpha={alpha:g}: {fmt(teachers[alpha])}  [{', '.join(f'{a:.2f}' for a in teachers[alpha])}]"
              f"  ({np.mean(teacher_t):.1f} s/run)", flush=True)
    if args.teachers_only:
        return
    if 0.0 not in caches:
        raise SystemExit("--alphas and --distil-alphas must include 0 (the plain teacher)")

    res = run_students(s, data, caches, s.student_epochs, s.temperatures, student_t)
    out: dict[str, Any] = {"setting": name, "config": dataclasses.asdict(s),
                           "teachers": {str(a): v for a, v in teachers.items()}}
    out["students"] = report(res, f"students ({s.student_epochs} ep)")
    out["decisions"] = decisions(res, list(caches), s.temperatures)
    t_teacher, t_cache, t_student = np.mean(teacher_t), np.mean(cache_t), np.mean(student_t)
    study = (9 * (t_teacher + t_cache) + 42 * t_student) / 2
    print(f"  CPU time/run (1 thread): teacher {t_teacher:.1f} s (+cache {t_cache:.2f} s), student {t_student:.1f} s;"
          f" projected 51-run study on 2 cores: {study:.0f} s", flush=True)
    out["timing"] = {"teacher_s": t_teacher, "cache_s": t_cache, "student_s": t_student, "study_s": study,
                     "wall_s": time.time() - wall0, "loadavg_end": Path("/proc/loadavg").read_text().split()[:3]}

    if args.convergence:
        temps = tuple(args.conv_temps) if args.conv_temps is not None else s.temperatures
        res2 = run_students(s, data, caches, 2 * s.student_epochs, temps, [])
        out["students_2x"] = report(res2, f"students ({2 * s.student_epochs} ep, convergence check)")
        moves = {k: float(np.mean(res2[k]) - np.mean(res[k])) for k in res2}
        print("  doubling epochs moves mean acc by: " + ", ".join(f"{k} {v:+.2f}" for k, v in moves.items()), flush=True)
        out["convergence_moves"] = moves
    with open(args.results, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
