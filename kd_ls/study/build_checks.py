"""The checks of a study that build its networks and data modules (torch), so that a bad model
argument or data option fails on load, not hours later in a run.

A setting the catalog's generator built already (kd_ls/catalog.py: every network and data setting
of the shipped study files) is known to build, so a study made only of those needs none of this:
that is what lets `kd-ls study --dry-run` of the default study answer without importing torch.
"""

from __future__ import annotations

from typing import Any, Optional

from kd_ls import catalog
from kd_ls.study.schema import StudyError

# spec.validate calls this module, so it takes spec's Study and Recipe without importing spec.
Study = Recipe = Any

# Input shapes of the datasets whose shape is fixed; others are read from the data (image_folder)
# or are 32x32 colour images (CIFAR).
KNOWN_SHAPES = {"mnist1d": (1, 40), "digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28)}


def built_by_catalog(study: Study) -> bool:
    """Whether every data setting and network of the study is one the catalog's generator built."""
    data = catalog.data_facts(study.dataset.name, study.dataset.options)
    if data is None:
        return False
    for recipe in (study.teacher, study.student):
        if catalog.data_facts(study.dataset.name, {**study.dataset.options, **recipe.data_options}) is None:
            return False
        if catalog.network_flops(recipe.model, recipe.model_kwargs, data["input_shape"], data["num_classes"]) is None:
            return False
    return True


def check_by_building(study: Study) -> None:
    """Build the study's data modules and networks once (unless the catalog built them); a
    failure is a one-line StudyError naming the field."""
    if built_by_catalog(study):
        return
    from kd_ls.data import DATASETS

    shape = _input_shape(study)
    _build_network(study.teacher, "study.teacher", shape)
    _build_network(study.student, "study.student", shape)
    for role, recipe in (("teacher", study.teacher), ("student", study.student)):
        try:
            DATASETS[study.dataset.name](**{**study.dataset.options, **recipe.data_options})
        except (TypeError, ValueError, FileNotFoundError) as err:
            raise StudyError(f"study.{role}.data_options: {err}") from None


def _build_network(r: Recipe, where: str, input_shape: Optional[tuple[int, ...]]) -> None:
    """Build the recipe's network once on the data's shape (CIFAR's 3x32x32 when unknown)."""
    from kd_ls.models import create_model

    try:
        create_model(r.model, 10, input_shape or (3, 32, 32), **r.model_kwargs)
    except (ValueError, TypeError) as err:
        raise StudyError(f"{where}.model: {err}") from None


def _input_shape(study: Study) -> Optional[tuple[int, ...]]:
    """The shape of one input of the study's data, None for CIFAR's 3x32x32.

    Data modules load lazily: building one checks options and paths. An image folder is read
    as well (decoded into its cache, which training needs anyway): its shape is its images',
    and a broken tree or archive is refused here, not in the first run."""
    from kd_ls.data import DATASETS

    try:
        module = DATASETS[study.dataset.name](**study.dataset.options)
        if study.dataset.name == "image_folder":
            return module.input_shape
    except (TypeError, ValueError, OSError) as err:
        raise StudyError(f"study.dataset.options: {err}") from None
    return KNOWN_SHAPES.get(study.dataset.name)
