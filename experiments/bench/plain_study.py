"""A study's grid as a plain PyTorch script would run it: the reference `study_vs_plain.py` times kd-ls against.

It does the work a researcher needs from the grid and no more: every planned run (teachers,
baselines, students; same networks from ``kd_ls.models``, same MNIST-1D data, split,
normalisation and circular-shift views, same epochs, batch size, AdamW and per-step schedule)
trained by a hand-written loop; teacher logits computed once per teacher where the study caches
them; final weights saved; the same end-of-run val and test metrics as a kd-ls run, computed by
calling ``kd_ls.metrics`` directly; the distillation temperature chosen on the students' val
accuracy, as the study's verdict does. Runs execute in `jobs` spawned worker processes,
teachers before their students, as ``kd-ls study --jobs`` schedules them. Per-epoch validation,
resumable checkpoints, logs, records and reports are what kd-ls adds; this loop has none.

It never imports Lightning (nor ``kd_ls.data``, which does): a plain script would not. Only
MNIST-1D studies with the ``uniform`` label-smoothing convention and Hinton's ``kd`` loss are
supported; anything else is refused in one line.

    python experiments/bench/plain_study.py PLAN.json OUT_DIR   # PLAN.json: written by study_vs_plain.py
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from functools import lru_cache
from multiprocessing import get_context
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# kd-ls's ArrayDataModule / MNIST1D defaults, which a study's options override; study_vs_plain.py
# checks them against kd_ls.data before it starts this script.
DATA_DEFAULTS = {"num_samples": 10000, "seed": 42, "train_split": 0.8, "val_fraction": 0.1, "split_seed": 0,
                 "eval_batch_size": 1000, "augment": False, "drop_last": False}
SHIFT_PAD = 4  # kd-ls's augment_pad: shifts -4..4, 9 views


@lru_cache(maxsize=4)
def mnist1d_arrays(num_samples: int, seed: int, train_split: float) -> dict[str, Any]:
    """The generated MNIST-1D arrays (generated once per process, as kd-ls does)."""
    import mnist1d.data

    args = mnist1d.data.get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
    return mnist1d.data.make_dataset(args)


def mnist1d_splits(options: dict[str, Any]) -> dict[str, Tensor]:
    """Train/val/test tensors and train-split normalisation, as kd-ls's MNIST1D builds them."""
    o = {**DATA_DEFAULTS, **options}
    d = mnist1d_arrays(o["num_samples"], o["seed"], o["train_split"])
    x = torch.from_numpy(np.ascontiguousarray(d["x"], dtype=np.float32))[:, None, :]
    y = torch.from_numpy(np.asarray(d["y"], dtype=np.int64))
    n_val = max(1, int(round(o["val_fraction"] * y.shape[0])))
    order = torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(o["split_seed"]))
    val, train = order[:n_val].sort().values, order[n_val:].sort().values
    mean, std = x[train].mean(dim=(0, 2)).view(1, -1, 1), x[train].std(dim=(0, 2)).clamp_min(1e-8).view(1, -1, 1)
    return {"train_x": x[train], "train_y": y[train], "val_x": x[val], "val_y": y[val],
            "test_x": torch.from_numpy(np.ascontiguousarray(d["x_test"], dtype=np.float32))[:, None, :],
            "test_y": torch.from_numpy(np.asarray(d["y_test"], dtype=np.int64)), "mean": mean, "std": std}


def shift(x: Tensor, ids: Tensor) -> Tensor:
    """Circular shift of each signal by its view id minus the pad (kd-ls's shift views)."""
    length = x.shape[-1]
    source = (torch.arange(length)[None, :] - (ids[:, None] - SHIFT_PAD)) % length
    return x.gather(-1, source[:, None, :].expand(-1, x.shape[1], -1))


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up, then cosine (or constant) decay: the schedule the study's recipes use."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min((step - warmup) / max(1, total - warmup), 1.0)))


@torch.no_grad()
def outputs(net: torch.nn.Module, x: Tensor, data: dict[str, Tensor], batch: int) -> tuple[Tensor, Tensor]:
    """Logits and penultimate features of `net` on raw inputs `x`, in eval mode."""
    net.eval()
    feats = [net.forward_features((x[i:i + batch] - data["mean"]) / data["std"]) for i in range(0, x.shape[0], batch)]
    h = torch.cat(feats)
    return net.get_classifier()(h), h


def end_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Accuracy, NLL, ECE and MCE (kd_ls.metrics), as a kd-ls run reports for val and test."""
    from kd_ls import metrics

    ece, mce = metrics.calibration_errors(F.softmax(logits, -1), labels)
    return {"acc": (logits.argmax(-1) == labels).double().mean().item(), "nll": metrics.nll(logits, labels).item(),
            "ece": ece.item(), "mce": mce.item()}


def cluster_and_role_metrics(run: dict[str, Any], test: tuple[Tensor, Tensor], val_logits: Tensor,
                             labels: Tensor, val_labels: Tensor, teacher_test: Optional[Tensor]) -> dict[str, float]:
    """The test split's role metrics a kd-ls run reports, from kd_ls.metrics."""
    from kd_ls import metrics

    logits, h = test
    args = run["config"]["model"]["init_args"]
    out: dict[str, float] = {}
    if args.get("measure_clusters", True):
        out.update(r2=metrics.class_separation_r2(h, labels).item(), nc1=metrics.nc1(h, labels).item(),
                   variance_ratio=metrics.variance_ratio(h, labels).item(), cdnv=metrics.cdnv(h, labels).item(),
                   silhouette=metrics.silhouette_score(h, labels).item(),
                   stability=metrics.stability(F.softmax(logits, -1), labels).item())
    if run["role"] == "teacher":
        t_star = metrics.fit_temperature(val_logits, val_labels)
        out.update(ts_temperature=t_star, ece_ts=metrics.ece(F.softmax(logits / t_star, -1), labels).item(),
                   nll_ts=metrics.nll(logits / t_star, labels).item())
        for t in args.get("report_temperatures", (1.0, 2.0, 4.0, 8.0)):
            out[f"smoothness_T{t:g}"] = metrics.smoothness_index(logits, labels, t).item()
    if teacher_test is not None:
        out.update(agreement=metrics.agreement(logits, teacher_test).item(),
                   kl_teacher=metrics.kl_divergence(teacher_test, logits).item())
    return out


def check_supported(run: dict[str, Any]) -> None:
    """Refuse what this loop does not implement (one line)."""
    args, data = run["config"]["model"]["init_args"], run["config"]["data"]
    if not data["class_path"].endswith("MNIST1D"):
        raise SystemExit(f"plain_study: dataset {data['class_path']} not supported; only MNIST-1D studies")
    if args.get("convention", "uniform") != "uniform" or args.get("loss", "kd") != "kd":
        raise SystemExit("plain_study: only the uniform label-smoothing convention and loss: kd are supported")
    if args.get("optimizer") != "adamw" or args.get("schedule", "cosine") not in ("cosine", "constant"):
        raise SystemExit("plain_study: only optimizer adamw with a cosine or constant schedule is supported")


def train_run(run: dict[str, Any], out_dir: str, threads: int) -> dict[str, Any]:
    """Train one planned run with a plain loop; save weights (teachers: test logits and the
    logit cache too); return its end-of-run metrics and where its seconds went."""
    from kd_ls.models import create_model

    clock = {"start": (time.perf_counter(), time.process_time())}
    torch.set_num_threads(threads)
    cfg = run["config"]
    args, trainer = cfg["model"]["init_args"], cfg["trainer"]
    options = {k: v for k, v in cfg["data"]["init_args"].items() if k not in ("steps_per_call",)}
    batch_size, augment = options.pop("batch_size"), options.get("augment", False)
    data = mnist1d_splits(options)
    marks = {"data": (time.perf_counter(), time.process_time())}
    seed = cfg["seed_everything"]
    torch.manual_seed(seed)
    net = create_model(args["net"], 10, (1, 40), **(args.get("net_kwargs") or {}))
    teacher_cache = teacher_test = None
    if run["teacher_id"] is not None:
        teacher_cache = torch.load(os.path.join(out_dir, f"{run['teacher_id']}.cache.pt"))
        teacher_test = torch.load(os.path.join(out_dir, f"{run['teacher_id']}.test_logits.pt"))
    marks["teacher"] = (time.perf_counter(), time.process_time())
    x, y = data["train_x"], data["train_y"]
    n, epochs = y.shape[0], trainer["max_epochs"]
    steps_per_epoch = -(-n // batch_size)
    total = steps_per_epoch * epochs
    warmup = int(args.get("warmup_epochs", 0.0) * total / epochs)
    opt = torch.optim.AdamW(net.parameters(), lr=args["lr"], weight_decay=args["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup, args.get("schedule", "cosine")))
    order_gen, view_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    alpha, t, beta = args.get("alpha", 0.0), args.get("temperature"), args.get("beta")
    soften = args.get("soften_student", True)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=order_gen).split(batch_size):
            xb, yb = x[idx], y[idx]
            view = torch.zeros_like(idx)
            if augment:
                view = torch.randint(0, 2 * SHIFT_PAD + 1, (idx.shape[0],), generator=view_gen)
                xb = shift(xb, view)
            logits = net((xb - data["mean"]) / data["std"])
            if teacher_cache is None:
                loss = F.cross_entropy(logits, yb, label_smoothing=alpha)
            else:
                tl = teacher_cache[idx, view if teacher_cache.shape[1] > 1 else 0]
                s_t = t if soften else 1.0
                soft = F.kl_div(F.log_softmax(logits / s_t, -1), F.softmax(tl / t, -1), reduction="batchmean")
                soft = soft * (t * t if soften else 1.0)
                loss = soft if beta == 1.0 else (1 - beta) * F.cross_entropy(logits, yb) + beta * soft
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    marks["train"] = (time.perf_counter(), time.process_time())
    eval_batch = options.get("eval_batch_size", DATA_DEFAULTS["eval_batch_size"])
    val_logits, _ = outputs(net, data["val_x"], data, eval_batch)
    test = outputs(net, data["test_x"], data, eval_batch)
    metrics = {f"val/{k}": v for k, v in end_metrics(val_logits, data["val_y"]).items()}
    metrics.update({f"test/{k}": v for k, v in end_metrics(test[0], data["test_y"]).items()})
    metrics.update({f"test/{k}": v for k, v in cluster_and_role_metrics(
        run, test, val_logits, data["test_y"], data["val_y"], teacher_test).items()})
    marks["metrics"] = (time.perf_counter(), time.process_time())
    torch.save(net.state_dict(), os.path.join(out_dir, f"{run['run_id']}.pt"))
    if run["role"] == "teacher":
        torch.save(test[0], os.path.join(out_dir, f"{run['run_id']}.test_logits.pt"))
        torch.save(teacher_logits_per_view(net, data, run["student_views"], eval_batch),
                   os.path.join(out_dir, f"{run['run_id']}.cache.pt"))
    marks["save"] = (time.perf_counter(), time.process_time())
    phases, cpu, last = {}, {}, clock["start"]
    for name, mark in marks.items():
        phases[name], cpu[name] = mark[0] - last[0], mark[1] - last[1]
        last = mark
    return {"run_id": run["run_id"], "role": run["role"], "seconds": last[0] - clock["start"][0],
            "cpu_seconds": last[1] - clock["start"][1], "phases_s": phases, "phases_cpu_s": cpu, "metrics": metrics}


@torch.no_grad()
def teacher_logits_per_view(net: torch.nn.Module, data: dict[str, Tensor], views: int, batch: int) -> Tensor:
    """The teacher's logits (N_train, V, K) for every training sample under each student view."""
    x = data["train_x"]
    per_view = []
    for v in range(views):
        xv = x if views == 1 else shift(x, torch.full((x.shape[0],), v))
        per_view.append(outputs(net, xv, data, batch)[0])
    return torch.stack(per_view, dim=1)


def run_grid(plan: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Every run of `plan` in `plan['jobs']` worker processes, teachers before their students;
    then each plain teacher's distillation temperature chosen on its students' mean val acc."""
    runs = plan["runs"]
    for run in runs:
        check_supported(run)
    os.makedirs(out_dir, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    pending = list(runs)
    running: dict[Future, str] = {}
    with ProcessPoolExecutor(plan["jobs"], mp_context=get_context("spawn")) as pool:
        while pending or running:
            for run in list(pending):
                if len(running) >= plan["jobs"]:
                    break
                if run["teacher_id"] is not None and run["teacher_id"] not in done:
                    continue
                pending.remove(run)
                running[pool.submit(train_run, run, out_dir, plan["threads"])] = run["run_id"]
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                del running[future]
                result = future.result()
                done[result["run_id"]] = result
    return {"runs": [done[r["run_id"]] for r in runs], "chosen_temperature": choose_temperature(runs, done)}


def choose_temperature(runs: list[dict[str, Any]], done: dict[str, dict[str, Any]]) -> Optional[float]:
    """The temperature whose plain-teacher students have the best mean val accuracy."""
    by_t: dict[float, list[float]] = {}
    for run in runs:
        if run["role"] == "student" and run["teacher_alpha"] == 0:
            by_t.setdefault(run["temperature"], []).append(done[run["run_id"]]["metrics"]["val/acc"])
    return max(by_t, key=lambda t: sum(by_t[t]) / len(by_t[t])) if by_t else None


def main() -> None:
    """Run the plan file's grid into OUT_DIR; print a JSON summary (per-run seconds and metrics)."""
    plan_path, out_dir = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    with open(plan_path) as f:
        plan = json.load(f)
    result = run_grid(plan, out_dir)
    result["wall_s"] = time.perf_counter() - start
    with open(os.path.join(out_dir, "plain_result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
