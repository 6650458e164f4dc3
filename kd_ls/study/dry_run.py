"""`kd-ls study --dry-run`: what a study will do, before anything trains.

The runs by role, which of them are already finished (and which would be redone, and why), and
their estimated cost: training FLOPs from study/cost.py, and a time from the study's finished
runs when it has some (else it is known once the first run has finished).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

from kd_ls.clock import clock
from kd_ls.study.cost import CALIBRATED_AFTER, CostModel, InputSpec, input_spec_from_data, input_spec_from_runs
from kd_ls.study.ownership import describe_owner, owner_of, recorded_owner
from kd_ls.study.plan import PlannedRun, plan_study
from kd_ls.records import read_record
from kd_ls.study.runner import stale_reason
from kd_ls.study.spec import Study

ROLES = ("teacher", "baseline", "student")


def _flops(value: float) -> str:
    """FLOPs with an SI prefix, e.g. '3.2 TFLOP'."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}FLOP"
    return f"{value:.3g} FLOP"


def _network(run: PlannedRun, runs: dict[str, PlannedRun]) -> str:
    """The trained network, and for a student how it sees its teacher."""
    net = run.config["model"]["init_args"]["net"]
    if run.teacher_id is None:
        return net
    teacher = runs[run.teacher_id].config["model"]["init_args"]["net"]
    how = "cached logits" if run.config["model"]["init_args"].get("teacher_cache") else "online"
    return f"{net} <- {teacher} ({how})"


def _input_spec(study: Study, study_dir: Path, runs: list[PlannedRun]) -> tuple[Optional[InputSpec], str]:
    """The data's shape (and training samples), and a line saying where it came from."""
    try:
        spec = input_spec_from_data(study)
        return spec, (f"Data: {study.dataset.name}, inputs {spec.input_shape}, {spec.num_classes} classes, "
                      f"{spec.train_samples:,} training samples")
    except Exception as err:  # noqa: BLE001 - a dry run reports what it cannot load, and goes on
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    spec = input_spec_from_runs(study_dir, runs)
    known = "compute per training sample, from a finished run's checkpoint" if spec else "compute unknown"
    return spec, f"Data: {study.dataset.name} could not be loaded ({reason}); {known}"


def describe(study: Study, parallel: int, source: Optional[str] = None) -> str:
    """The dry run's text for `study` (its folder may hold finished runs), `parallel` runs at a
    time; `source` is its study file (None: the default study), whose ownership of the folder is checked."""
    study_dir = Path(study.output)
    runs = plan_study(study)
    by_id = {run.run_id: run for run in runs}
    states = {run.run_id: stale_reason(study_dir, run.run_id) for run in runs}
    to_run = [run for run in runs if states[run.run_id] is not None]
    spec, data_line = _input_spec(study, study_dir, runs)
    costs = CostModel(runs)
    if spec is not None:
        costs.set_spec(spec)
    for run in runs:
        record = read_record(study_dir, run.run_id) if states[run.run_id] is None else None
        if record and record.get("seconds"):
            costs.observe(run, float(record["seconds"]))
    samples = spec.train_samples if spec is not None and spec.train_samples else 1

    lines = [f"Study '{study.name}' in {study_dir}: {len(runs)} runs planned, {len(runs) - len(to_run)} finished, "
             f"{len(to_run)} to run ({parallel} at a time)", data_line, ""]
    owner = recorded_owner(study_dir)
    if owner is not None and owner != owner_of(source):
        lines.insert(2, f"Folder: belongs to {describe_owner(owner)}, not {describe_owner(owner_of(source))}: "
                        "`kd-ls study` would stop; set `output:` to a new folder, or pass --adopt")
    header = f"{'role':<9}{'runs':>5}{'finished':>10}{'to run':>8}{'epochs':>8}  {'compute per run':<17}network"
    lines += [header, "-" * len(header)]
    for role in ROLES:
        of_role = [run for run in runs if run.role == role]
        if not of_role:
            continue
        left = sum(states[run.run_id] is not None for run in of_role)
        epochs = "/".join(sorted({str(run.config["trainer"]["max_epochs"]) for run in of_role}))
        per_run = _flops(samples * costs.cost(of_role[0])) + ("" if spec and spec.train_samples else "/sample") \
            if costs.costs else "?"
        networks = ", ".join(sorted(set(_network(run, by_id) for run in of_role)))
        lines.append(f"{role:<9}{len(of_role):>5}{len(of_role) - left:>10}{left:>8}{epochs:>8}  {per_run:<17}{networks}")
    lines.append("")
    if costs.costs:
        total = samples * sum(costs.cost(run) for run in to_run)
        per = "" if spec and spec.train_samples else " per training sample"
        lines.append(f"Training compute of the runs to do: {_flops(total)}{per} (forward and backward passes; "
                     "evaluation not counted)")
    left_seconds = costs.seconds_left(to_run, {}, parallel)
    if left_seconds is not None:
        rough = f" (rough: some kinds of run to do have fewer than {CALIBRATED_AFTER} finished runs of their own)" \
            if costs.rough(to_run, []) else ""
        lines.append(f"Time left at the speed of this study's {len(costs.seconds)} finished runs: ~{clock(left_seconds)}"
                     f"{rough}")
    elif to_run:
        lines.append("Time: known once a run of this study has finished (`kd-ls study` shows the time left from then on)")
    lines += ["", "Runs:"]
    for run in runs:
        reason = states[run.run_id]
        state = "finished" if reason is None else "to run" if reason == "not run yet" else f"to redo: {reason}"
        lines.append(f"  {run.label():<32} {run.run_id:<22} {state}")
    counts = Counter(run.role for run in to_run)
    todo = ", ".join(f"{n} {role}{'s' if n != 1 else ''}" for role, n in counts.items()) or "nothing"
    lines.append(f"\nNothing was trained (dry run). To run: {todo}.")
    return "\n".join(lines)
