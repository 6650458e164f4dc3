"""From results rows (dicts, possibly read from CSV) to cells of finished runs keyed by seed.

A student cell is (teacher alpha, temperature); teacher and baseline cells are keyed by their
own alpha. Each cell maps seed -> row, so comparisons between cells are paired by seed.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from kd_ls.verdict.stats import Interval, mean_interval

PLAIN_ALPHA = 0.0  # a plain teacher: the reference every LS teacher is compared with
PRIMARY_METRIC = "test_acc"  # last-epoch test accuracy: the number every comparison is about
_TEXT_COLUMNS = ("role", "status")
ROLES = ("teacher", "student", "baseline")
# Metrics that cannot be negative: their intervals are clipped at 0 (stats.Interval.clipped), so no
# table or error bar shows an impossible value. R² and silhouette can be negative and are not here.
NON_NEGATIVE = ("test_acc", "val_acc", "train_acc", "test_nll", "test_ece", "test_ece_ts", "test_ts_temperature",
                "test_nc1", "test_variance_ratio", "test_cdnv", "mutual_information", "test_smoothness_T")

Row = dict[str, Any]
Cell = dict[int, Row]


def _number(value: Any) -> float | None:
    """Float of a CSV or in-memory value; empty, None and nan all mean 'missing'."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _maybe_number(value: Any) -> Any:
    """Float when the value reads as a number, else the value unchanged (unknown text columns)."""
    try:
        return _number(value)
    except (TypeError, ValueError):
        return value


def normalise_row(row: Mapping[str, Any]) -> Row:
    """Copy of a results row with CSV strings coerced: seed to int, numbers to float,
    empty strings to None; unknown non-numeric columns are kept as they are."""
    out: Row = {}
    for key, value in row.items():
        if key in _TEXT_COLUMNS:
            out[key] = None if value is None else str(value).strip()
        elif key == "seed":
            seed = _number(value)
            out[key] = None if seed is None else int(seed)
        else:
            out[key] = _maybe_number(value)
    return out


def _check_done_row(row: Row) -> None:
    """Refuse a finished row that cannot be placed in a cell, rather than guess its cell."""
    if row.get("role") not in ROLES:
        raise ValueError(f"row has unknown role {row.get('role')!r}: {row}")
    if row.get("seed") is None or row.get("alpha") is None:
        raise ValueError(f"finished row lacks seed or alpha: {row}")
    if row["role"] == "student" and (row.get("temperature") is None or row.get("teacher_alpha") is None):
        raise ValueError(f"finished student row lacks temperature or teacher_alpha: {row}")


def done_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[list[Row], int]:
    """Normalised finished rows, and the number of failed rows (which are left out)."""
    done: list[Row] = []
    failed = 0
    for raw in rows:
        row = normalise_row(raw)
        if row.get("status") == "failed":
            failed += 1
        elif row.get("status") == "done":
            _check_done_row(row)
            done.append(row)
    return done, failed


def _add_to_cell(cells: dict[Any, Cell], key: Any, row: Row) -> None:
    """Put a row in its cell; two finished runs of one seed in one cell would make the
    pairing ambiguous, so that is an error."""
    cell = cells.setdefault(key, {})
    if row["seed"] in cell:
        raise ValueError(f"two finished {row['role']} runs for seed {row['seed']} in cell {key}")
    cell[row["seed"]] = row


def loss_of(row: Mapping[str, Any]) -> str:
    """A student row's distillation loss; rows from before the losses axis (no value) are KD."""
    return row.get("loss") or "kd"


def of_loss(rows: Iterable[Row], loss: str) -> list[Row]:
    """The rows with the students of one loss only (teachers and baselines kept), so that each
    (teacher alpha, T) cell holds one student per seed."""
    return [row for row in rows if row["role"] != "student" or loss_of(row) == loss]


def student_cells(rows: Iterable[Row]) -> dict[tuple[float, float], Cell]:
    """Finished student rows by (teacher alpha, temperature), each cell keyed by seed."""
    cells: dict[Any, Cell] = {}
    for row in rows:
        if row["role"] == "student":
            _add_to_cell(cells, (row["teacher_alpha"], row["temperature"]), row)
    return cells


def alpha_cells(rows: Iterable[Row], role: str) -> dict[float, Cell]:
    """Finished teacher or baseline rows by alpha, each cell keyed by seed."""
    cells: dict[Any, Cell] = {}
    for row in rows:
        if row["role"] == role:
            _add_to_cell(cells, row["alpha"], row)
    return cells


def metric_interval(cell: Cell, metric: str) -> Interval:
    """95% interval over the seeds of a cell that report ``metric``, clipped at 0 for a
    non-negative metric (which keeps its coverage: the true value is never below 0)."""
    interval = mean_interval([row[metric] for row in cell.values() if row.get(metric) is not None])
    return interval.clipped(0.0) if metric.startswith(NON_NEGATIVE) else interval
