"""What the registries hold, readable without torch: the catalog a study is checked and planned from.

A study file names models, datasets, Trainer arguments and module settings. Checking those names
(with "did you mean"), filling in the modules' defaults and planning run ids needs only their
signatures, which `catalog.json` (beside this file) records, so `kd-ls study --dry-run` answers
without importing torch (about 1.5 s) or Lightning (about 4 s).

The file is generated from the live classes by `python -m kd_ls.study.catalog_build` and never edited
by hand; tests/test_catalog.py fails when it differs from what the code would generate. It also
records the configurations the generator built and measured (every network and data setting of
the shipped study files): their input shape, class count, training samples, augmentation views
and forward FLOPs. A study made only of such configurations needs no network or data module
built to be checked (spec.py); any other configuration is built and measured with torch.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

CATALOG_PATH = Path(__file__).with_name("catalog.json")
_file: list[dict[str, Any]] = []  # the file's contents, read once per process
_served: list[dict[str, Any]] = []  # catalogs served instead of the file (`using`)


def catalog() -> dict[str, Any]:
    """The catalog in use: the file's contents unless `using` another."""
    if _served:
        return _served[-1]
    if not _file:
        _file.append(json.loads(CATALOG_PATH.read_text()))
    return _file[0]


@contextmanager
def using(content: dict[str, Any]) -> Iterator[None]:
    """Serve `content` instead of the file while the block runs (the generator, checking the
    shipped study files against the catalog it is making)."""
    _served.append(content)
    try:
        yield
    finally:
        _served.pop()


def canonical(value: Any) -> str:
    """A JSON key for settings: sorted keys, tuples as lists (what the generator wrote)."""
    return json.dumps(value, sort_keys=True)


def classifier_defaults() -> dict[str, Any]:
    """ClassifierModule's constructor defaults (milestones and other tuples as lists)."""
    return catalog()["classifier_defaults"]


def data_defaults() -> dict[str, Any]:
    """ArrayDataModule's constructor defaults (batch size and the other shared data options)."""
    return catalog()["data_defaults"]


def trainer_arguments() -> list[str]:
    """Every argument of Lightning's Trainer."""
    return catalog()["trainer_arguments"]


def dataset_names() -> list[str]:
    """The dataset registry's names, in its order."""
    return list(catalog()["datasets"])


def dataset_class_path(name: str) -> str:
    """The dotted class path of a registered dataset's data module."""
    return catalog()["datasets"][name]["class_path"]


def dataset_options(name: str) -> list[str]:
    """Every option a registered dataset's data module takes (its own and ArrayDataModule's)."""
    return catalog()["datasets"][name]["options"]


def model_names() -> list[str]:
    """The model registry's names (the parsed families are in `model_patterns`)."""
    return list(catalog()["models"])


def model_patterns() -> list[str]:
    """The model name families create_model parses (wrn_<depth>_<width>, tv:<name>)."""
    return catalog()["model_patterns"]


def model_arguments(name: str) -> Optional[list[str]]:
    """The keyword arguments a registered model's builder takes; None for a parsed family (any)."""
    return catalog()["models"].get(name)


def data_facts(dataset: str, options: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """Input shape, classes, training samples and views of a data setting the generator built
    (None when it did not): `options` are the data module's options (batch size aside)."""
    key = canonical({"dataset": dataset, "options": dict(options)})
    return next((f for f in catalog()["built"]["data"] if canonical({k: f[k] for k in ("dataset", "options")}) == key),
                None)


def network_flops(net: str, net_kwargs: Mapping[str, Any], input_shape: Sequence[int],
                  num_classes: int) -> Optional[float]:
    """Forward FLOPs per sample of a network the generator built (None when it did not)."""
    key = canonical([net, dict(net_kwargs), list(input_shape), num_classes])
    for entry in catalog()["built"]["networks"]:
        if canonical([entry["net"], entry["net_kwargs"], entry["input_shape"], entry["num_classes"]]) == key:
            return entry["forward_flops"]
    return None
