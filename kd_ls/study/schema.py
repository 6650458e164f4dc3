"""Typed YAML -> dataclasses: every value checked against its field's annotation, with a one-line
StudyError naming the field (its dotted path), the expected type, and for an unknown key the
allowed keys and the closest one. The study file's schema itself is kd_ls/study/spec.py."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Union, get_args, get_origin, get_type_hints

from kd_ls.names import did_you_mean


class StudyError(ValueError):
    """A malformed study file; the message is one line naming the field."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}s"
    if origin is dict:
        return "a mapping"
    if origin is Union:
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None)) + " or null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, tp.__name__)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` (ints accepted as floats), building dataclasses."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise StudyError(f"{where}: expected a mapping, got {value!r}")
        return build(tp, value, where)
    if origin is Union:
        if value is None and type(None) in get_args(tp):
            return None
        return _coerce(value, next(a for a in get_args(tp) if a is not type(None)), where)
    if origin is list:
        if not isinstance(value, list):
            raise StudyError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return [_coerce(v, get_args(tp)[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise StudyError(f"{where}: expected a mapping, got {value!r}")
        _check_finite(value, where)
        return dict(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise StudyError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    _check_finite(value, where)
    return float(value) if tp is float else value


def _check_finite(value: Any, where: str) -> None:
    """Refuse NaN and infinities (YAML's .nan, .inf) anywhere in a value, mappings and lists included."""
    if isinstance(value, float) and not math.isfinite(value):
        raise StudyError(f"{where}: must be a finite number, got {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


def build(cls: type, raw: dict[str, Any], where: str) -> Any:
    """The dataclass `cls` from a mapping, every value checked against its annotation; unknown keys refused
    with the allowed ones (and the closest)."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in hints:
            raise StudyError(f"{where}.{key}: unknown key; allowed: {', '.join(names)}{did_you_mean(key, names)}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()})
