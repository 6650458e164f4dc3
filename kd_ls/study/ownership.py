"""A study owns its folder: the folder records the study file that made it, and a study from
another file stops before any training instead of overwriting it.

A copied study file keeps the original's `output:`, so without this a copy's verdict would
replace the original's in place. The owner is the study file's resolved path, or DEFAULT_OWNER
for the shipped default study (`kd-ls study` without --config). Growing a study by editing its
own file is untouched (same file, same owner); `--adopt` hands a folder to another file. A
folder from before owners were recorded is adopted by the first study that runs in it, with a
note. `kd-ls study --new NAME` writes a starter study file with its own name and folder.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Optional

from kd_ls.io import atomic_write_json, atomic_write_text
from kd_ls.layout import StudyLayout
from kd_ls.study.spec import DEFAULT_STUDY, StudyError

DEFAULT_OWNER = "<default study>"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def owner_of(source: Optional[str | os.PathLike[str]]) -> str:
    """The owner a study from `source` records: the study file's resolved path, or DEFAULT_OWNER."""
    return DEFAULT_OWNER if source is None else str(Path(source).resolve())


def _owner_record(study_dir: Path) -> dict[str, Any]:
    """The folder's owner record; {} when it has none (a new folder, or one of an older kd-ls)."""
    try:
        return json.loads(StudyLayout.of(study_dir).owner.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:  # never guess an owner: a damaged record is the user's to fix
        raise StudyError(f"study.output: cannot read {StudyLayout.of(study_dir).owner} ({err}); "
                         "remove it to let the next study adopt the folder") from None


def recorded_owner(study_dir: Path) -> Optional[str]:
    """The study file the folder belongs to, or None when it records none (new, or older kd-ls)."""
    return _owner_record(study_dir).get("study_file")


def _relative(owner: str, study_dir: Path) -> Optional[str]:
    """The study file's path from the study folder (what stays true when both move together)."""
    return None if owner == DEFAULT_OWNER else os.path.relpath(owner, Path(study_dir).resolve())


def describe_owner(owner: str) -> str:
    """An owner in words: the default study, or the study file 'PATH'."""
    return "the default study (kd-ls study without --config)" if owner == DEFAULT_OWNER else f"the study file '{owner}'"


def claim_folder(study_dir: Path, source: Optional[str | os.PathLike[str]], adopt: bool = False) -> Optional[str]:
    """Make `study_dir` the folder of the study from `source`, or refuse before anything is written.

    Returns a note to show when the folder changed hands (adopted with --adopt, or a folder of an
    older kd-ls that recorded no owner), else None. Raises StudyError, one line naming both study
    files and what to do, when the folder belongs to another study file and `adopt` is False."""
    layout = StudyLayout.of(study_dir)
    owner, previous = owner_of(source), recorded_owner(study_dir)
    # The same file, or the same file beside the same folder after both moved (a clone, a copy).
    moved_together = source is not None and _owner_record(study_dir).get("relative") == _relative(owner, study_dir)
    if previous == owner or moved_together:
        return None
    if previous is not None and not adopt:
        raise StudyError(
            f"study.output: '{study_dir}' belongs to {describe_owner(previous)}, not {describe_owner(owner)}; "
            f"set `output:` to a new folder (or run `kd-ls study --new NAME` for a starter file with its own), "
            f"or pass --adopt to take the folder over and grow it")
    earlier = _owner_record(study_dir).get("previous", [])
    atomic_write_json(layout.owner, {"study_file": owner, "relative": _relative(owner, study_dir),
                                     "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                     "previous": [*earlier, previous] if previous else earlier})
    if previous is not None:
        return f"{study_dir} adopted (--adopt): it belonged to {describe_owner(previous)}, now to {describe_owner(owner)}"
    if layout.manifest.is_file():
        return f"{study_dir} recorded no study file (an older kd-ls): it now belongs to {describe_owner(owner)}"
    return None


def starter_path(name_or_file: str) -> tuple[str, Path]:
    """The study name and file of `kd-ls study --new NAME`: NAME gives ./NAME.yaml; a path ending
    in .yaml or .yml gives that file, named after its stem."""
    given = Path(name_or_file)
    path = given if given.suffix in (".yaml", ".yml") else Path(f"{name_or_file}.yaml")
    name = path.stem
    if not NAME.fullmatch(name) or (given.suffix not in (".yaml", ".yml") and len(given.parts) > 1):
        raise StudyError(f"--new: {name_or_file!r} is no study name (letters, digits, '.', '_' and '-', "
                         "or a path ending in .yaml)")
    return name, path


def write_starter(name_or_file: str) -> tuple[str, Path]:
    """Write a starter study file, a copy of the default study with its own `name:` and
    `output: runs/study/NAME`; return its name and path. Never overwrites a file."""
    name, path = starter_path(name_or_file)
    if path.exists():
        raise StudyError(f"--new: '{path}' exists already; choose another name or remove it")
    text = DEFAULT_STUDY.read_text()
    for key, value in (("name", name), ("output", f"runs/study/{name}")):
        text, found = re.subn(rf"^{key}:.*$", f"{key}: {value}", text, count=1, flags=re.M)
        if not found:  # the shipped file names both; a copy without them would share the default's folder
            raise StudyError(f"--new: the default study file has no top-level `{key}:` line to set")
    header = f"# Study '{name}': a copy of kd-ls's default study (written by `kd-ls study --new`); edit freely.\n"
    atomic_write_text(path, header + text)
    return name, path
