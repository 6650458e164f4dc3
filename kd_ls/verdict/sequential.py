"""The primary's design, its declarations and its looks: seeds added until decided, at 5% overall.

A design fixes, before the first look, the question (its grid and margin), the precondition and
the seed schedule: the numbers of seeds n_1 < ... < n_K at which the primary is tested. Look k
tests at alpha_k = budget * (n_k - n_(k-1)) / n_K (n_0 = 0): alpha is spent in proportion to the
seeds each look adds, and the alpha_k sum to the budget. By the union bound the chance of any
false decision over all looks is at most the sum of the alpha_k, whatever the dependence between
looks (they share seeds): "worse" / "better" under no true difference, or "equivalent" under a
true difference of exactly ±margin, each at most 5% in all. A study without a sequential plan has
one look, at its seeds, with the whole 5%.

The history (a study folder keeps it in a file of its own, kd_ls/layout.py) records every
declaration (its design, the study file's SHA-256, when, and which looks came before it) and every
look (its seeds, estimate, interval and alpha). A declaration whose design differs from the one
before it is a re-declaration: if looks came before it, its budget is what they left (alpha
already spent is never spent again). Pure functions over plain dicts: the caller reads and writes
the file.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

ALPHA = 0.05
DEFAULT_MARGIN = 0.005  # 0.5 pp
SPENDING = ("alpha_k = budget * (n_k - n_(k-1)) / n_K: spent in proportion to the seeds each planned look adds; "
            "union bound over the looks")
PRECONDITION_MODES = ("pooled", "val_chosen")


def schedule(initial: int, max_seeds: int | None = None, round_size: int | None = None) -> list[int]:
    """The planned numbers of seeds: ``initial``, then ``round_size`` more at a time up to ``max_seeds``
    (the last look at exactly max_seeds); one look at ``initial`` without a sequential plan."""
    if max_seeds is None or max_seeds <= initial:
        return [initial]
    step = max(1, round_size or initial)
    looks = list(range(initial, max_seeds, step))
    return looks + [max_seeds]


def look_alphas(planned: Sequence[int], budget: float) -> list[float]:
    """alpha_k for each planned look (see the module docstring); they sum to ``budget``."""
    previous, alphas = 0, []
    for n in planned:
        alphas.append(budget * (n - previous) / planned[-1])
        previous = n
    return alphas


def design_of(study: Mapping[str, Any]) -> dict[str, Any]:
    """The primary's design from a study's plain-dict form (study.json's `study`).

    Defaults (science.md §6): every LS alpha, every temperature the LS teachers are distilled at,
    the first loss listed, margin 0.5 pp, the pooled precondition, one look at the study's seeds
    unless `until_decided` plans more."""
    primary = study.get("primary") or {}
    ls_alphas = [a for a in study["alphas"] if a > 0]
    temperatures = study.get("ls_temperatures") or study["temperatures"]
    losses = study.get("losses") or ["kd"]
    sequential = study.get("until_decided") or {}
    precondition = primary.get("precondition") or "pooled"
    return {
        "question": "LS-teacher students minus plain-teacher students (test accuracy), paired by seed, "
                    "averaged over the grid",
        "grid": {"alphas": sorted(primary.get("alphas") or ls_alphas),
                 "temperatures": sorted(primary.get("temperatures") or temperatures),
                 "loss": primary.get("loss") or losses[0]},
        "margin_pp": 100 * DEFAULT_MARGIN if primary.get("margin_pp") is None else float(primary["margin_pp"]),
        "precondition": {"mode": precondition,
                         "temperatures": sorted(primary.get("temperatures") or study["temperatures"])},
        "schedule": schedule(len(study["seeds"]), sequential.get("max_seeds"), sequential.get("round")),
        "spending": SPENDING,
    }


def alpha_spent(history: Mapping[str, Any]) -> float:
    """The alpha all recorded looks have spent."""
    return sum(look["alpha"] for look in history.get("looks", []))


def declare(history: Mapping[str, Any] | None, design: Mapping[str, Any], sha256: str | None,
            when: str) -> dict[str, Any]:
    """The history with this declaration: unchanged when the design is the current one (a new file
    hash is noted), else a new declaration whose budget is the alpha earlier looks left."""
    history = {"declarations": [], "looks": [], **(history or {})}
    declarations = list(history["declarations"])
    if declarations and declarations[-1]["design"] == design:
        current = dict(declarations[-1])
        if sha256 not in current["sha256_seen"]:
            current["sha256_seen"] = [*current["sha256_seen"], sha256]
        declarations[-1] = current
        return {**history, "declarations": declarations}
    looks = [look["index"] for look in history["looks"]]
    declarations.append({"index": len(declarations) + 1, "declared_sha256": sha256, "sha256_seen": [sha256],
                         "design": dict(design), "declared_at": when, "looks_before": looks,
                         "redeclared_after_look": bool(looks),
                         "alpha_budget": max(ALPHA - alpha_spent(history), 0.0)})
    return {**history, "declarations": declarations}


def next_look(history: Mapping[str, Any], complete_seeds: Sequence[int]) -> dict[str, Any] | None:
    """The look the current declaration's schedule reaches with these complete seeds: the latest
    planned look with n_k <= the number of complete seeds (its seeds: those recorded for it, else
    the first n_k complete ones), or None before the first planned look."""
    declaration = history["declarations"][-1]
    planned = declaration["design"]["schedule"]
    alphas = look_alphas(planned, declaration["alpha_budget"])
    reached = [k for k, n in enumerate(planned) if n <= len(complete_seeds)]
    if not reached:
        return None
    k = reached[-1]
    recorded = _recorded(history, declaration["index"], k + 1)
    seeds = recorded["seeds"] if recorded else sorted(complete_seeds)[:planned[k]]
    return {"declaration": declaration["index"], "look": k + 1, "looks_planned": len(planned), "n": planned[k],
            "seeds": list(seeds), "alpha": alphas[k]}


def _recorded(history: Mapping[str, Any], declaration: int, look: int) -> dict[str, Any] | None:
    return next((x for x in history["looks"] if x["declaration"] == declaration and x["look"] == look), None)


def record_look(history: Mapping[str, Any], look: Mapping[str, Any], result: Mapping[str, Any],
                when: str) -> dict[str, Any]:
    """The history with this look's result recorded (a look already recorded stays as it was: the
    same seeds give the same numbers, and its alpha is spent once)."""
    if _recorded(history, look["declaration"], look["look"]):
        return dict(history)
    entry = {"index": len(history["looks"]) + 1, **look, "at": when,
             **{key: result[key] for key in ("word", "estimate_pp", "ci_pp", "p", "tost_p")},
             "boundary": f"two-sided t at alpha {look['alpha']:.4g}; equivalence: TOST at the same alpha"}
    return {**history, "looks": [*history["looks"], entry]}


def first_decided(history: Mapping[str, Any], declaration: int) -> dict[str, Any] | None:
    """The first look of a declaration whose word is not undecided (the sequential design stops
    there), or None."""
    return next((x for x in history["looks"] if x["declaration"] == declaration and x["word"] != "undecided"), None)
