"""The study file: what to train, validated on load with one-line errors naming the field.

A study is: one dataset; a teacher recipe trained at each smoothing value in `alphas`; a
student recipe distilled from each teacher at each temperature in `temperatures`; baseline
students trained alone (plain and with LS); all of it for every seed in `seeds`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from kd_ls import catalog
from kd_ls.io import read_yaml_text
from kd_ls.lightning.optim import check_optimization
from kd_ls.loss_options import CONVENTIONS, LOSSES, check_loss, loss_settings
from kd_ls.names import did_you_mean
from kd_ls.study.build_checks import check_by_building
from kd_ls.study.schema import StudyError, build
from kd_ls.verdict.sequential import PRECONDITION_MODES

LOGGERS = ("csv", "wandb")
EXECUTORS = ("local", "slurm", "submitit-local")
MAX_SEED = 2**32 - 1  # Lightning's seed_everything (and numpy) take seeds in [0, 2**32 - 1]
# Trainer arguments a study sets itself, with the field that does.
STUDY_TRAINER_KEYS = {"max_epochs": "study.teacher.epochs / study.student.epochs", "default_root_dir": "study.output",
                      "logger": "study.logger"}
# The module and the data module own their defaults (read from the catalog, kd_ls/catalog.py,
# without importing them); a recipe only names them.
_MODULE = catalog.classifier_defaults()
_DATA = catalog.data_defaults()
# Recipe fields passed to the module under the same name.
MODULE_FIELDS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "milestones", "gamma",
                 "warmup_epochs", "channels_last", "compile", "steps_per_call")


@dataclass
class Recipe:
    """How one network is trained: its model and optimisation settings.

    Defaults are ClassifierModule's (and the data module's batch size): one source of truth."""

    model: str = _MODULE["net"]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # Data-module options for this recipe only, over the dataset's (e.g. {augment: true} for a
    # teacher that sees shifted views while its students see the plain signals).
    data_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = _DATA["batch_size"]
    optimizer: str = _MODULE["optimizer"]
    lr: float = _MODULE["lr"]
    momentum: float = _MODULE["momentum"]
    nesterov: bool = _MODULE["nesterov"]
    weight_decay: float = _MODULE["weight_decay"]
    schedule: str = _MODULE["schedule"]
    milestones: list[float] = field(default_factory=lambda: list(_MODULE["milestones"]))
    gamma: float = _MODULE["gamma"]
    warmup_epochs: float = _MODULE["warmup_epochs"]
    channels_last: bool = _MODULE["channels_last"]
    compile: bool = _MODULE["compile"]
    steps_per_call: int = _MODULE["steps_per_call"]

    def module_args(self) -> dict[str, Any]:
        """The ClassifierModule arguments of this recipe."""
        return {"net": self.model, "net_kwargs": self.model_kwargs or None,
                **{name: getattr(self, name) for name in MODULE_FIELDS}}


@dataclass
class Dataset:
    """The dataset: a registry name and its data-module arguments."""

    name: str = "mnist1d"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Baselines:
    """Students trained alone: without LS (`alone`) and with LS at `ls_alpha` (0 = skip)."""

    alone: bool = True
    ls_alpha: float = 0.1


@dataclass
class WandbSettings:
    """Where W&B runs go when `logger: wandb`."""

    project: str = "kd-ls"
    entity: Optional[str] = None
    offline: bool = False


@dataclass
class Cluster:
    """Where runs execute: here (`local`), on SLURM through submitit (`slurm`), or through
    submitit's local executor (`submitit-local`, for testing a cluster set-up on one machine)."""

    executor: str = "local"
    folder: Optional[str] = None
    max_parallel: int = 8
    runs_per_gpu: int = 1  # local studies: workers per GPU when --jobs is not given (study/devices.py)
    timeout_min: int = 120
    cpus_per_task: int = 4
    gpus_per_node: int = 0
    mem_gb: float = 16.0
    partition: Optional[str] = None
    slurm_additional_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Primary:
    """The study's one primary question, declared before any run (science.md §6): LS-teacher
    students minus plain-teacher students, paired by seed and averaged over `alphas` (default: every
    LS alpha) and `temperatures` (default: every temperature the LS teachers are distilled at) under
    `loss` (default: the first listed); "equivalent" means within ±`margin_pp`. Its `precondition`:
    plain-teacher students vs the student alone, `pooled` over the same temperatures or at the plain
    teacher's `val_chosen` temperature (Müller's protocol)."""

    alphas: Optional[list[float]] = None
    temperatures: Optional[list[float]] = None
    loss: Optional[str] = None
    margin_pp: float = 0.5
    precondition: str = "pooled"


@dataclass
class UntilDecided:
    """Seeds added in rounds of `round` until the primary is decided or `max_seeds` seeds have run;
    the looks' schedule is fixed by these two numbers and the study's seeds (kd_ls/verdict/sequential.py)."""

    max_seeds: int = 10
    round: int = 2


@dataclass
class Study:
    """A whole teacher/student grid.

    Teachers with alpha > 0 are distilled at `ls_temperatures` when given (Müller's protocol:
    plain teachers at many T, LS teachers at T = 1), else at `temperatures` like the plain one.
    `teacher_cache: null` (auto) caches teacher logits when that costs fewer teacher passes
    than running the teacher online for all of its students (see plan.use_teacher_cache)."""

    name: str = "study"
    dataset: Dataset = field(default_factory=Dataset)
    teacher: Recipe = field(default_factory=Recipe)
    student: Recipe = field(default_factory=Recipe)
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.1])
    convention: str = "uniform"
    temperatures: list[float] = field(default_factory=lambda: [1.0, 4.0])
    ls_temperatures: Optional[list[float]] = None
    beta: float = 1.0
    soften_student: bool = True
    # Distillation losses (kd_ls.losses): one student per (teacher, T, loss); options per loss,
    # e.g. {dkd: {dkd_alpha: 1, dkd_beta: 8, dkd_warmup_epochs: 0}}.
    losses: list[str] = field(default_factory=lambda: ["kd"])
    loss_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: Baselines = field(default_factory=Baselines)
    seeds: list[int] = field(default_factory=lambda: [0])
    primary: Primary = field(default_factory=Primary)
    until_decided: Optional[UntilDecided] = None
    output: str = "runs/study"
    logger: str = "csv"
    wandb: WandbSettings = field(default_factory=WandbSettings)
    trainer: dict[str, Any] = field(default_factory=dict)
    teacher_cache: Optional[bool] = None
    threads: int = 1
    cluster: Cluster = field(default_factory=Cluster)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (what study.json stores)."""
        return dataclasses.asdict(self)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise StudyError(message)


def _check_recipe(r: Recipe, where: str) -> None:
    _require(r.epochs >= 1, f"{where}.epochs: must be >= 1, got {r.epochs}")
    _require(r.batch_size >= 1, f"{where}.batch_size: must be >= 1, got {r.batch_size}")
    _require(r.steps_per_call >= 1, f"{where}.steps_per_call: must be >= 1, got {r.steps_per_call}")
    try:  # the module's own validation, with the recipe's field names
        check_optimization(r.optimizer, r.lr, r.momentum, r.weight_decay, r.schedule, r.milestones, r.gamma,
                           r.warmup_epochs, prefix=f"{where}.")
    except ValueError as err:
        raise StudyError(str(err).replace(" must ", ": must ", 1)) from None
    _require(r.warmup_epochs < r.epochs,
             f"{where}.warmup_epochs: must be shorter than the run ({where}.epochs={r.epochs}), got {r.warmup_epochs:g}")
    _check_model_names(r, where)


def _check_model_names(r: Recipe, where: str) -> None:
    """A known model name, and only arguments its builder takes (the catalog's; parsed families
    such as tv:<name> take any, checked when the network is built)."""
    names = catalog.model_names()
    known = r.model in names or r.model.startswith("tv:") or r.model.startswith("wrn_")
    allowed = [*names, *catalog.model_patterns()]
    _require(known, f"{where}.model: model name '{r.model}' is unknown; choose one of: {', '.join(allowed)}"
             + did_you_mean(r.model, allowed))
    arguments = catalog.model_arguments(r.model)
    for key in r.model_kwargs if arguments is not None else ():
        _require(key in arguments, f"{where}.model: {key!r} (in model_kwargs) is not an argument of model "
                                   f"'{r.model}'; allowed: {', '.join(arguments) or 'none'}" + did_you_mean(key, arguments))


def _check_data_options(study: Study) -> None:
    """Only options the dataset's data module takes, in study.dataset.options and each recipe's
    data_options (the batch size is the recipe's own field)."""
    allowed = [name for name in catalog.dataset_options(study.dataset.name) if name != "batch_size"]
    places = [("study.dataset.options", study.dataset.options),
              ("study.teacher.data_options", study.teacher.data_options),
              ("study.student.data_options", study.student.data_options)]
    for where, options in places:
        for key in options:
            _require(key in allowed, f"{where}: {key!r} is not an option of dataset '{study.dataset.name}'; "
                                     f"allowed: {', '.join(allowed)}" + did_you_mean(key, allowed))


def _check_trainer(options: dict[str, Any]) -> None:
    """Refuse study.trainer keys that are no Trainer argument, or that the study sets itself."""
    names = catalog.trainer_arguments()
    allowed = [name for name in names if name not in STUDY_TRAINER_KEYS]
    for key in options:
        if key in STUDY_TRAINER_KEYS:
            raise StudyError(f"study.trainer.{key}: set by the study ({STUDY_TRAINER_KEYS[key]}), not here")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            if close and close[0] in STUDY_TRAINER_KEYS:
                hint = f"did you mean {close[0]}? The study sets that one ({STUDY_TRAINER_KEYS[close[0]]}); "
            raise StudyError(f"study.trainer.{key}: not a Lightning Trainer argument; {hint}allowed: {', '.join(allowed)}")


def _check_distinct(values: Optional[list[Any]], where: str) -> None:
    _require(values is None or len(set(values)) == len(values), f"{where}: values must be distinct, got {values}")


def _check_primary(study: Study) -> None:
    """The primary's grid must be part of the study's, its margin positive, its precondition known;
    a sequential plan must add seeds."""
    primary, ls_alphas = study.primary, [a for a in study.alphas if a > 0]
    for i, alpha in enumerate(primary.alphas or []):
        _require(alpha in ls_alphas, f"study.primary.alphas[{i}]: {alpha:g} is not an LS alpha of the study; "
                                     f"choose from {', '.join(f'{a:g}' for a in ls_alphas)}")
    ls_temperatures = study.ls_temperatures or study.temperatures
    for i, t in enumerate(primary.temperatures or []):
        _require(t in ls_temperatures and t in study.temperatures,
                 f"study.primary.temperatures[{i}]: {t:g} is not a temperature both plain and LS teachers are "
                 f"distilled at; choose from {', '.join(f'{x:g}' for x in ls_temperatures if x in study.temperatures)}")
    _require(primary.loss is None or primary.loss in study.losses,
             f"study.primary.loss: must be one of study.losses ({', '.join(study.losses)}); got {primary.loss!r}"
             + did_you_mean(primary.loss, study.losses))
    _require(primary.margin_pp > 0, f"study.primary.margin_pp: must be > 0, got {primary.margin_pp}")
    _require(primary.precondition in PRECONDITION_MODES,
             f"study.primary.precondition: must be one of {', '.join(PRECONDITION_MODES)}; got {primary.precondition!r}"
             + did_you_mean(primary.precondition, PRECONDITION_MODES))
    if study.until_decided is not None:
        plan = study.until_decided
        _require(plan.max_seeds > len(study.seeds), f"study.until_decided.max_seeds: must be more than the study's "
                                                    f"{len(study.seeds)} seeds, got {plan.max_seeds}")
        _require(plan.round >= 1, f"study.until_decided.round: must be >= 1, got {plan.round}")
        _require(max(study.seeds) + plan.max_seeds <= MAX_SEED,
                 f"study.until_decided.max_seeds: the added seeds would pass {MAX_SEED}")


def _check_losses(study: Study) -> None:
    """Known, distinct loss names, each compatible with soften_student; options only for listed
    losses, and only the options those losses take."""
    _require(len(study.losses) > 0, "study.losses: must list at least one loss")
    for i, loss in enumerate(study.losses):
        _require(loss in LOSSES, f"study.losses[{i}]: must be one of {', '.join(LOSSES)}; got {loss!r}"
                                 + did_you_mean(loss, LOSSES))
    _check_distinct(study.losses, "study.losses")
    for loss, options in study.loss_options.items():
        hint = "; add it there" if loss in LOSSES else did_you_mean(loss, LOSSES)
        _require(loss in study.losses, f"study.loss_options.{loss}: not a loss of study.losses "
                                       f"({', '.join(study.losses)}){hint}")
        _require(isinstance(options, dict), f"study.loss_options.{loss}: expected a mapping, got {options!r}")
    try:
        for loss in study.losses:
            check_loss(loss, {}, study.soften_student, prefix="study.")
            loss_settings(loss, study.loss_options.get(loss, {}), prefix=f"study.loss_options.{loss}.")
    except ValueError as err:
        raise StudyError(str(err).replace(" must ", ": must ", 1)) from None


def validate(study: Study) -> Study:
    """Check ranges and names across the whole study; return it unchanged."""
    _require(bool(study.name.strip()), "study.name: must not be empty")
    datasets = catalog.dataset_names()
    _require(study.dataset.name in datasets,
             f"study.dataset.name: {study.dataset.name!r} is unknown; choose one of: {', '.join(datasets)}"
             + did_you_mean(study.dataset.name, datasets))
    _check_data_options(study)
    _check_trainer(study.trainer)
    _check_recipe(study.teacher, "study.teacher")
    _check_recipe(study.student, "study.student")
    _require(len(study.alphas) > 0, "study.alphas: must list at least one value")
    for i, a in enumerate(study.alphas):
        _require(0.0 <= a < 1.0, f"study.alphas[{i}]: must be in [0, 1), got {a}")
    _check_distinct(study.alphas, "study.alphas")
    _require(study.convention in CONVENTIONS,
             f"study.convention: must be one of {', '.join(CONVENTIONS)}; got {study.convention!r}"
             + did_you_mean(study.convention, CONVENTIONS))
    _require(len(study.temperatures) > 0, "study.temperatures: must list at least one value")
    for i, t in enumerate(study.temperatures):
        _require(t > 0, f"study.temperatures[{i}]: must be > 0, got {t}")
    for i, t in enumerate(study.ls_temperatures or []):
        _require(t > 0, f"study.ls_temperatures[{i}]: must be > 0, got {t}")
    _check_distinct(study.temperatures, "study.temperatures")
    _check_distinct(study.ls_temperatures, "study.ls_temperatures")
    _require(study.ls_temperatures is None or len(study.ls_temperatures) > 0,
             "study.ls_temperatures: must list at least one value (or be null: same as temperatures)")
    _require(0.0 <= study.beta <= 1.0, f"study.beta: must be in [0, 1], got {study.beta}")
    _check_losses(study)
    _require(0.0 <= study.baselines.ls_alpha < 1.0,
             f"study.baselines.ls_alpha: must be in [0, 1), got {study.baselines.ls_alpha}")
    _require(len(study.seeds) > 0, "study.seeds: must list at least one seed")
    _require(len(set(study.seeds)) == len(study.seeds), f"study.seeds: seeds must be distinct, got {study.seeds}")
    for i, seed in enumerate(study.seeds):
        _require(0 <= seed <= MAX_SEED, f"study.seeds[{i}]: must be in [0, {MAX_SEED}], got {seed}")
    _check_primary(study)
    _require(study.logger in LOGGERS, f"study.logger: must be one of {', '.join(LOGGERS)}; got {study.logger!r}"
             + did_you_mean(study.logger, LOGGERS))
    _require(study.cluster.executor in EXECUTORS,
             f"study.cluster.executor: must be one of {', '.join(EXECUTORS)}; got {study.cluster.executor!r}"
             + did_you_mean(study.cluster.executor, EXECUTORS))
    _require(study.cluster.max_parallel >= 1, f"study.cluster.max_parallel: must be >= 1, got {study.cluster.max_parallel}")
    _require(study.cluster.runs_per_gpu >= 1, f"study.cluster.runs_per_gpu: must be >= 1, got {study.cluster.runs_per_gpu}")
    _require(study.threads >= 1, f"study.threads: must be >= 1, got {study.threads}")
    check_by_building(study)
    return study


def parse_study(raw: Any) -> Study:
    """Build and validate a Study from a mapping (a loaded YAML document)."""
    if not isinstance(raw, dict):
        raise StudyError(f"study: expected a mapping at the top of the file, got {type(raw).__name__}")
    return validate(build(Study, raw, "study"))


def load_study(path: Optional[str | Path] = None) -> Study:
    """Load a study file; without a path, the embedded default study."""
    if path is None:
        return default_study()
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file: '{path}' does not exist")
    text = read_yaml_text(path, "study file", StudyError)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise StudyError(f"study file: '{path}' is not valid YAML ({str(err).splitlines()[0]})") from None
    if raw is None:  # an empty file would silently run the built-in defaults
        raise StudyError(f"study file: '{path}' is empty; give at least the dataset, alphas, temperatures and seeds "
                         f"(see {DEFAULT_STUDY.name} under configs/study/), or leave out --config for the default study")
    return parse_study(raw)


DEFAULT_STUDY = importlib.resources.files("kd_ls.configs") / "study" / "mnist1d_default.yaml"


def default_study() -> Study:
    """The default study, read from the shipped configs/study/mnist1d_default.yaml."""
    return parse_study(yaml.safe_load(DEFAULT_STUDY.read_text()))
