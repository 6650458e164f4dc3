"""Small file helpers: atomic writes (a killed process never leaves half a file), hashes, and
reading YAML files as text."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def read_yaml_text(path: str | os.PathLike, field: str, error: type[ValueError] = ValueError) -> str:
    """The text of a YAML file; raises `error`, naming `field` and the file, when it is not UTF-8
    text (a checkpoint given for a config, say)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{field}: '{path}' is not a YAML text file (byte {err.start} is not UTF-8)") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to a temporary file beside `path`, flush it to disk, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write `obj` as indented JSON (NaN written as null)."""
    atomic_write_text(path, json.dumps(to_json_safe(obj), indent=2, sort_keys=True) + "\n")


def to_json_safe(obj: Any) -> Any:
    """Replace non-finite floats by None, recursively, so the JSON is strict."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_safe(v) for v in obj]
    return obj


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_save_tensor(path: str | os.PathLike, tensor: Any) -> None:
    """torch.save to a temporary file beside `path`, then rename over it."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(tensor, tmp)
    os.replace(tmp, path)


def tensor_fingerprint(tensor: Any, *extra: Any) -> str:
    """Short SHA-256 of a tensor's bytes (and a few extra values), naming caches derived from it."""
    digest = hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr(extra).encode())
    return digest.hexdigest()[:16]
