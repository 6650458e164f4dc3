"""The study folder's record of its primary question: every declaration and every look, on disk.

The decisions themselves are pure functions (kd_ls/verdict/sequential.py); this module reads the
folder's history file, passes it through them and writes it back atomically."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from kd_ls.io import atomic_write_json
from kd_ls.layout import StudyLayout
from kd_ls.verdict import sequential


def now() -> str:
    """The time stamp of a declaration or a look: UTC, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_history(study_dir: Path) -> dict[str, Any] | None:
    """The folder's declarations and looks, or None before the first declaration."""
    path = StudyLayout.of(study_dir).primary_history
    return json.loads(path.read_text()) if path.is_file() else None


def save_history(study_dir: Path, history: Mapping[str, Any]) -> None:
    """Write the declarations and looks (only those two keys: the rest is derived)."""
    atomic_write_json(StudyLayout.of(study_dir).primary_history,
                      {"declarations": history["declarations"], "looks": history["looks"]})


def declare_primary(study_dir: Path, study: Mapping[str, Any], sha256: str | None) -> dict[str, Any]:
    """Record the primary's design of ``study`` (its plain-dict form) before any run, with the study
    file's hash; return the design."""
    design = sequential.design_of(study)
    save_history(study_dir, sequential.declare(read_history(study_dir), design, sha256, now()))
    return design
