"""`kd-ls sync`: upload a study's offline W&B runs (and its summary run) with `wandb sync`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from kd_ls.commands.errors import ArgumentParser


def sync_command(argv: Sequence[str]) -> int:
    """kd-ls sync STUDY_DIR [--list] [--timeout S]: upload the offline W&B runs under STUDY_DIR.

    Returns 0 when every run is uploaded (or none was left), 1 when the upload failed (one line
    on stderr saying why; the runs stay offline, and the same command retries)."""
    parser = ArgumentParser(prog="kd-ls sync", description="Upload the offline W&B runs of a study folder (or of "
                                                            "a run folder) with `wandb sync`; needs `wandb login`.")
    parser.add_argument("folder", metavar="STUDY_DIR", help="a study folder (or a `kd-ls fit` run folder)")
    parser.add_argument("--list", action="store_true", help="only list the offline runs not uploaded yet")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="give up after this many seconds of uploading (default 1800)")
    args = parser.parse_args(argv)
    from kd_ls.study.tracking import SyncError, offline_runs, sync_offline_runs

    folder = Path(args.folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"STUDY_DIR: '{folder}' is not a folder")
    runs = offline_runs(folder)
    if args.list or not runs:
        print("\n".join(map(str, runs)) if runs else f"kd-ls sync: no offline W&B runs left to upload in {folder}")
        return 0
    print(f"kd-ls sync: uploading {len(runs)} offline W&B run(s) from {folder}", file=sys.stderr, flush=True)
    try:
        last = sync_offline_runs(runs, timeout=args.timeout)
    except SyncError as err:
        print(f"kd-ls sync: failed: {err}", file=sys.stderr)
        return 1
    print(f"kd-ls sync: {len(runs)} run(s) uploaded ({last})", file=sys.stderr)
    return 0
