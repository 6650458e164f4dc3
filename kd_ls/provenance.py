"""What a run records about where it came from: versions, git commit, seed, checksums."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any, Optional

from kd_ls import __version__
from kd_ls.io import sha256_file

PACKAGES = ("torch", "torchvision", "pytorch-lightning", "wandb", "scikit-learn", "numpy", "jsonargparse", "mnist1d")


def git_commit(path: str = ".") -> Optional[str]:
    """The commit of the git checkout holding `path` (with '-dirty' if modified), or None."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=path, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return commit + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, Optional[str]]:
    """Installed versions of the packages a result depends on."""
    versions: dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_provenance(seed: Optional[int], checkpoint: Optional[str], teacher_checkpoint: Optional[str]) -> dict[str, Any]:
    """Provenance of one run: kd-ls version, git commit of the code, packages, seed, SHA-256s."""
    import torch

    def digest(path: Optional[str]) -> Optional[str]:
        return sha256_file(path) if path and os.path.isfile(path) else None

    return {
        "kd_ls_version": __version__,
        "git_commit": git_commit(os.path.dirname(os.path.abspath(__file__))),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "seed": seed,
        "checkpoint": checkpoint,
        "checkpoint_sha256": digest(checkpoint),
        "teacher_checkpoint": teacher_checkpoint,
        "teacher_checkpoint_sha256": digest(teacher_checkpoint),
    }
