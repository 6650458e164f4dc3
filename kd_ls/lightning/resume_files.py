"""Writing a fit's resumable checkpoint (harness.ResumeCheckpoint) at every epoch end, cheaply.

RUN/checkpoints/resume.ckpt is a relative symbolic link to the newest of the data files beside
it, .resume-epoch=N-<random>.ckpt (N the epochs it holds). Each save writes a new data file,
swaps the link onto it in one rename and removes the older data files, so resume.ckpt always
names a complete checkpoint (a kill never leaves half of one, nor none), and a file once named
by it is never rewritten (a reader holding it open, or memory-mapped, reads it whole).

Why not Trainer.save_checkpoint and a rename over resume.ckpt: for the default study's student
(3.5 MB of weights and AdamW state, 80 epochs of 0.19 s) one such save takes 6.5-8.3 ms, 0.66 s
of a 15 s run: Lightning's writer serializes into memory, copies that into a
temporary file in TMPDIR and moves it; torch computes a CRC32 of every zip record (torch.load
never checks them); and renaming a new regular file over an existing one makes ext4 write the
new file's data out at once (its auto_da_alloc). Here the state goes straight into its file
without checksums and only a link is renamed: 3.2 ms a save; a data file removed a few epochs
after it was written mostly never reaches the disk.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Optional

import torch


def save_linked(checkpoint: dict[str, Any], resume: Path, epochs: int) -> None:
    """Write `checkpoint` (`epochs` epochs) into a new data file beside `resume`, point the link
    `resume` at it in one rename, then remove the older data files (ResumeCheckpoint)."""
    resume.parent.mkdir(parents=True, exist_ok=True)
    # A name no file had (random, not from any generator a run draws from): no reader's file is ever rewritten.
    data = resume.with_name(f".{resume.stem}-epoch={epochs}-{os.urandom(4).hex()}{resume.suffix}")
    # torch.save straight into the file, without the zip records' CRC32 checksums: torch.load
    # never checks them, and computing them costs about 1 ms of a 3.5 MB save.
    with open(data, "xb") as f, _without_zip_checksums():
        torch.save(checkpoint, f)
    link = resume.with_name(f".{resume.name}.link")
    link.unlink(missing_ok=True)  # left by a kill between the next two lines
    os.symlink(data.name, link)  # relative: the run folder may move
    os.replace(link, resume)  # atomic, and writes no data out: a link is renamed
    remove_resume_data(resume, keep=data)


@contextlib.contextmanager
def _without_zip_checksums() -> Iterator[None]:
    """torch.save computing no zip checksums within the block (torch < 2.4 always computes them)."""
    set_options = getattr(torch.serialization, "set_crc32_options", None)
    if set_options is None:
        yield
        return
    before = torch.serialization.get_crc32_options()
    set_options(False)
    try:
        yield
    finally:
        set_options(before)


def remove_resume_data(resume: Path, keep: Optional[Path] = None) -> None:
    """Remove the data files of the resumable checkpoint `resume` (ResumeCheckpoint), but `keep`."""
    for data in resume.parent.glob(f".{resume.stem}-epoch=*{resume.suffix}"):
        if data != keep:
            data.unlink(missing_ok=True)
