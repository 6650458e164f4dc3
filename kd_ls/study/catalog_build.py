"""Generate kd_ls/catalog.json from the live registries: `python -m kd_ls.study.catalog_build`.

It records what kd_ls/catalog.py serves without torch: ClassifierModule's and ArrayDataModule's
defaults, Lightning's Trainer arguments, every dataset's class path and options, every model's
builder arguments; and it builds every network and data setting of the shipped study files
(configs/study/*.yaml) to record their shape, classes, training samples, views and forward
FLOPs. tests/test_catalog.py regenerates it and fails when the committed file differs.
"""

from __future__ import annotations

import importlib.resources
import inspect
import json
import sys
from typing import Any, Callable

import yaml

from kd_ls import catalog
from kd_ls.catalog import CATALOG_PATH, canonical

GENERATED_BY = "python -m kd_ls.study.catalog_build (do not edit: tests/test_catalog.py checks it is current)"
# Options naming files on this machine: such data settings are checked by building them, always.
FILE_OPTIONS = ("root", "path")


def _plain(value: Any) -> Any:
    """JSON's form of a default (tuples become lists)."""
    return json.loads(json.dumps(value))


def _defaults(fn: Callable) -> dict[str, Any]:
    """The parameters of `fn` that have defaults, with their defaults."""
    return {name: _plain(p.default) for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _options(cls: type) -> list[str]:
    """Every keyword a data module class takes: its own and, through **kwargs, its bases'."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names += [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                  and n not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names


def shipped_studies() -> list[Any]:
    """The shipped study files, parsed (configs/study/*.yaml inside the package)."""
    from kd_ls.study.spec import parse_study

    folder = importlib.resources.files("kd_ls.configs") / "study"
    return [parse_study(yaml.safe_load(f.read_text())) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yaml")]


def built_settings(studies: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Every data setting (dataset options, with each recipe's) and network of `studies`, built and measured."""
    from kd_ls.study.cost import InputSpec, count_forward_flops, measure_data

    data: dict[str, dict[str, Any]] = {}
    networks: dict[str, dict[str, Any]] = {}
    for study in studies:
        if any(k in FILE_OPTIONS for k in study.dataset.options):
            continue
        base = None
        for options in (study.dataset.options, *({**study.dataset.options, **r.data_options}
                                                 for r in (study.teacher, study.student))):
            entry = {"dataset": study.dataset.name, "options": _plain(options),
                     **measure_data(study.dataset.name, options)}
            data.setdefault(canonical({"dataset": entry["dataset"], "options": entry["options"]}), entry)
            base = base or entry
        spec = InputSpec(tuple(base["input_shape"]), base["num_classes"])
        for recipe in (study.teacher, study.student):
            entry = {"net": recipe.model, "net_kwargs": _plain(recipe.model_kwargs),
                     "input_shape": base["input_shape"], "num_classes": base["num_classes"]}
            key = canonical(entry)
            if key not in networks:
                networks[key] = {**entry, "forward_flops": count_forward_flops(recipe.model, recipe.model_kwargs, spec)}
    return {"data": list(data.values()), "networks": list(networks.values())}


def generate() -> dict[str, Any]:
    """The catalog as the code stands (imports torch and Lightning; builds the shipped settings)."""
    from pytorch_lightning import Trainer

    from kd_ls.data import DATASETS, ArrayDataModule
    from kd_ls.lightning.module import ClassifierModule
    from kd_ls.models import _REGISTRY, MODEL_PATTERNS

    content = {
        "generated_by": GENERATED_BY,
        "classifier_defaults": _defaults(ClassifierModule.__init__),
        "data_defaults": _defaults(ArrayDataModule.__init__),
        "trainer_arguments": [n for n in inspect.signature(Trainer.__init__).parameters if n != "self"],
        "datasets": {name: {"class_path": f"{cls.__module__}.{cls.__name__}", "options": _options(cls)}
                     for name, cls in DATASETS.items()},
        "models": {name: _arguments(builder) for name, builder in sorted(_REGISTRY.items())},
        "model_patterns": list(MODEL_PATTERNS),
        "built": {"data": [], "networks": []},
    }
    with catalog.using(content):  # the shipped studies are checked (by building) against this catalog
        content["built"] = built_settings(shipped_studies())
    return content


def _arguments(builder: Callable) -> list[str]:
    """A model builder's keyword arguments (after num_classes and input_shape)."""
    params = list(inspect.signature(builder).parameters.values())[2:]
    return [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def render(content: dict[str, Any]) -> str:
    """The catalog file's text."""
    return json.dumps(content, indent=1) + "\n"


if __name__ == "__main__":
    CATALOG_PATH.write_text(render(generate()))
    print(f"wrote {CATALOG_PATH}", file=sys.stderr)
