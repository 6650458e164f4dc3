"""What a study's runs cost: training FLOPs before they run, seconds once some have run.

A run's cost is its epochs x the FLOPs one training sample takes per epoch: three forward
passes' worth for the trained network (forward and backward), plus one forward pass of the
teacher for a student that runs its teacher online (a student reading the teacher-logit cache
pays nothing for it). Every run of a study sees the same training samples, so the costs of
its runs compare without the sample count; the dry run multiplies it in for total FLOPs.

Seconds come from finished runs: the seconds per unit of cost of the finished runs of a run's
kind (role, network and online teacher); before one has finished, from the runs most like it
(of its role; else training the same network, as a baseline for a student; else all of them),
hedged between their seconds per run and their seconds per unit of cost (CostModel.estimate).
So the time left is known from the first finished run, and is refined by every run that
finishes after it. It is *rough* while a kind of run still to do has fewer than
CALIBRATED_AFTER finished runs of its own: extrapolating by FLOPs leaves out the fixed seconds
every run spends starting, evaluating and writing, which dominate small networks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from kd_ls import catalog
from kd_ls.layout import StudyLayout
from kd_ls.study.plan import PlannedRun
from kd_ls.study.spec import Study


@dataclass(frozen=True)
class InputSpec:
    """What a network's cost depends on: the data's input shape and class count (and, when the
    data was loaded, how many training samples an epoch has)."""

    input_shape: tuple[int, ...]
    num_classes: int
    train_samples: Optional[int] = None


@lru_cache(maxsize=16)
def forward_flops(net: str, net_kwargs_json: str, spec: InputSpec) -> float:
    """FLOPs of one forward pass of one sample: the catalog's for a network it built, else
    counted (torch's FLOP counter, on a batch of two)."""
    kwargs = json.loads(net_kwargs_json)
    known = catalog.network_flops(net, kwargs, spec.input_shape, spec.num_classes)
    return known if known is not None else count_forward_flops(net, kwargs, spec)


def count_forward_flops(net: str, net_kwargs: Mapping[str, Any], spec: InputSpec) -> float:
    """FLOPs of one forward pass of one sample, counted by torch's FLOP counter on a batch of two."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from kd_ls.models import create_model

    with torch.random.fork_rng(devices=[]):  # building a net must not move the caller's RNG
        model = create_model(net, spec.num_classes, spec.input_shape, **net_kwargs).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(2, *spec.input_shape))
    return counter.get_total_flops() / 2


def _network(run: PlannedRun) -> tuple[str, str]:
    """The network a run trains: its name and keyword arguments (as canonical JSON)."""
    args = run.config["model"]["init_args"]
    return args["net"], json.dumps(args.get("net_kwargs") or {}, sort_keys=True)


def _net_flops(run: PlannedRun, spec: InputSpec) -> float:
    """Forward FLOPs per sample of the network a run trains."""
    return forward_flops(*_network(run), spec)


def run_cost(run: PlannedRun, teacher: Optional[PlannedRun], spec: InputSpec) -> float:
    """Training FLOPs per training sample of the whole run (see the module docstring)."""
    per_epoch = 3 * _net_flops(run, spec)
    if teacher is not None and not run.config["model"]["init_args"].get("teacher_cache"):
        per_epoch += _net_flops(teacher, spec)
    return run.config["trainer"]["max_epochs"] * per_epoch


def input_spec_from_data(study: Study) -> InputSpec:
    """The study's data shape, class count and training samples: the catalog's for a data setting
    it built, else from the data module (which loads the data)."""
    facts = catalog.data_facts(study.dataset.name, study.dataset.options)
    if facts is None:
        facts = measure_data(study.dataset.name, study.dataset.options)
    return InputSpec(tuple(facts["input_shape"]), facts["num_classes"], facts["train_samples"])


def measure_data(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Input shape, classes, training samples and augmentation views of a data setting, from its
    data module (loads the data)."""
    from kd_ls.data import DATASETS

    data = DATASETS[dataset](**options)
    data.setup("fit")
    return {"input_shape": list(data.input_shape), "num_classes": data.num_classes,
            "train_samples": int(data.splits["train"][1].shape[0]), "num_views": data.num_views}


def input_spec_from_runs(study_dir: Path, runs: Iterable[PlannedRun]) -> Optional[InputSpec]:
    """The data shape and class count from any finished run's checkpoint (cheap: no data is
    loaded), or None when no run has a checkpoint yet."""
    from kd_ls.lightning.checkpoint import read_checkpoint

    layout = StudyLayout.of(study_dir)
    for run in runs:
        ckpt = layout.run(run.run_id).last_checkpoint
        if ckpt.is_file():
            try:
                hp = read_checkpoint(ckpt, "checkpoint")["hyper_parameters"]
            except ValueError:  # a checkpoint being written or damaged: try another run's
                continue
            return InputSpec(tuple(hp["input_shape"]), int(hp["num_classes"]))
    return None


# Finished runs of a kind before the estimate for the runs of that kind is no longer rough.
CALIBRATED_AFTER = 2


@dataclass
class CostModel:
    """The runs' costs and the seconds per unit of cost measured so far.

    Costs are None until an InputSpec is known (set_spec); without them every run of a role
    counts as one unit, which still gives a time from finished runs of the same role."""

    runs: list[PlannedRun]
    costs: Optional[dict[str, float]] = None
    seconds: dict[str, float] = field(default_factory=dict)  # run id -> seconds, of finished runs

    def __post_init__(self) -> None:
        self.by_id = {run.run_id: run for run in self.runs}
        self.kinds = {run.run_id: self._kind(run) for run in self.runs}

    def set_spec(self, spec: InputSpec) -> None:
        """Compute every run's cost for data of this shape."""
        self.costs = {run.run_id: run_cost(run, self.by_id.get(run.teacher_id or ""), spec) for run in self.runs}

    def cost(self, run: PlannedRun) -> float:
        """The run's cost in FLOPs per training sample (1 when costs are unknown)."""
        return self.costs[run.run_id] if self.costs else 1.0

    def _kind(self, run: PlannedRun) -> tuple[str, ...]:
        """What a run's seconds are calibrated by: its role and network, and for a student the
        teacher it runs online (none when it reads cached logits). Runs of one kind differ in
        their targets (alpha, T, seed), not in the work a step does."""
        teacher = self.by_id.get(run.teacher_id or "")
        online = teacher is not None and not run.config["model"]["init_args"].get("teacher_cache")
        return (run.role, *_network(run), *(_network(teacher) if online else ()))

    def observe(self, run: PlannedRun, seconds: float) -> None:
        """A finished run took `seconds`."""
        self.seconds[run.run_id] = seconds

    def finished_of_kind(self, run: PlannedRun) -> int:
        """How many finished runs are of `run`'s kind."""
        return sum(self.kinds.get(i) == self.kinds[run.run_id] for i in self.seconds)

    def estimate(self, run: PlannedRun) -> Optional[float]:
        """Expected seconds of a run, from the finished runs most like it: of its kind, else of its
        role, else training the same network (a baseline for a student), else, when costs are
        known (they compare across networks), all of them; None before any of those has finished.

        From runs of its own kind it is their seconds per unit of cost times the run's cost. From
        runs of other kinds the split of their seconds into a fixed part (start-up, evaluation,
        writing) and a part proportional to FLOPs is unknown: the run takes between as long as
        they did and their seconds scaled by its cost (the two extremes), and the estimate is the
        geometric mean of the two."""
        done = [self.by_id[i] for i in self.seconds if i in self.by_id]
        likenesses = [lambda r: self.kinds[r.run_id] == self.kinds[run.run_id], lambda r: r.role == run.role,
                      lambda r: _network(r) == _network(run)]
        if self.costs is not None:
            likenesses.append(lambda r: True)
        for number, alike in enumerate(likenesses):
            similar = [r for r in done if alike(r)]
            if similar:
                seconds = sum(self.seconds[r.run_id] for r in similar)
                scaled = seconds / sum(self.cost(r) for r in similar) * self.cost(run)
                return scaled if number == 0 else math.sqrt(scaled * seconds / len(similar))
        return None

    def seconds_left(self, pending: Iterable[PlannedRun], running: dict[str, float], parallel: int) -> Optional[float]:
        """Wall-clock seconds until the runs still to do have finished, `parallel` at a time.

        `running` maps the id of each run in flight to the seconds it has run so far."""
        work = [(self.estimate(run), 0.0) for run in pending]
        work += [(self.estimate(self.by_id[i]), elapsed) for i, elapsed in running.items()]
        if not work:
            return 0.0
        if any(expected is None for expected, _ in work):
            return None
        total = sum(max(expected - elapsed, 0.0) for expected, elapsed in work)
        return total / max(1, min(parallel, len(work)))

    def rough(self, pending: Iterable[PlannedRun], running: Iterable[str]) -> bool:
        """Whether the time left is rough: some kind of run still to do has fewer than
        CALIBRATED_AFTER finished runs of its own, so its seconds are extrapolated from other
        kinds by FLOPs (which leave out each run's fixed start-up, evaluation and writing)."""
        left = [*pending, *(self.by_id[i] for i in running)]
        return any(self.finished_of_kind(run) < CALIBRATED_AFTER for run in left)
