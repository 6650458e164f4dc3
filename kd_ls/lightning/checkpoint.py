"""Reading kd-ls checkpoints: the one reader for students, `kd-ls analyze` and reports."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kd_ls.models import create_model


def read_checkpoint(path: str | Path, field: str = "model.teacher_ckpt") -> dict[str, Any]:
    """A kd-ls checkpoint (memory-mapped: weights are read when used); errors name `field`."""
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{field}: no checkpoint at '{path}'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{field}: '{path}' is not a readable torch checkpoint ({reason})") from None
    hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "net" not in hp or "num_classes" not in hp:
        raise ValueError(f"{field}: '{path}' is not a kd-ls checkpoint (no 'net' hyper-parameter)")
    return ckpt


def load_network(path: str | Path, num_classes: int, field: str = "model.teacher_ckpt") -> nn.Module:
    """The frozen network of a kd-ls checkpoint, checked to predict `num_classes` classes."""
    ckpt = read_checkpoint(path, field)
    hp = ckpt["hyper_parameters"]
    if hp["num_classes"] != num_classes:
        raise ValueError(f"{field}: the teacher predicts {hp['num_classes']} classes but the student's data has "
                         f"{num_classes}")
    # Building the network must not consume the global RNG: a student's initialisation and
    # data order have to be the same whichever teacher it learns from (paired design).
    with torch.random.fork_rng(devices=[]):
        net = create_model(hp["net"], hp["num_classes"], tuple(hp["input_shape"]), **(hp.get("net_kwargs") or {}))
    try:
        net.load_state_dict({k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{field}: '{path}' does not hold the weights of its '{hp['net']}' network "
                         f"({str(err).splitlines()[0]})") from None
    net.requires_grad_(False)
    return net.eval()
