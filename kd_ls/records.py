"""A run's record (`run.json`): the statuses it can hold, and reading it back.

The runner writes records; the progress display, the dry run and the report read them. Kept
below all three so that the report never imports the runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from kd_ls.layout import StudyLayout

DONE, FAILED, INTERRUPTED = "done", "failed", "interrupted"


def read_record(study_dir: Path, run_id: str) -> Optional[dict[str, Any]]:
    """A run's record, or None when the run never finished (or its record is unreadable)."""
    try:
        return json.loads(StudyLayout.of(study_dir).run(run_id).record.read_text())
    except (OSError, ValueError):
        return None
