"""The analysis page's figures, each read with a bounded amount of work at 100,000 trials.

Every figure's data is plain JSON for Plotly. Learning curves show at most
`CURVES_MAX_TRIALS` trials (the best and an evenly spaced sample), reward against cost shows the
whole Pareto front and at most `COST_MAX_POINTS` other trials, and op frequencies read at most
`OPS_SAMPLE_PER_WINDOW` genotypes in each of `OPS_WINDOWS` windows: each is a fixed number of
rows, whatever the search's size. The search comes from `search_get_for_user`, so it is one of
the user's teams'.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, cast

from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast, Mod

from searchcore.strategies import STRATEGY_CONFIGS, ControllerConfig
from webapp.searches.models import Search
from webapp.trials.models import Trial

CURVES_MAX_TRIALS = 50
CURVES_BEST = 10
COST_MAX_POINTS = 5000
OPS_WINDOWS = 20
OPS_SAMPLE_PER_WINDOW = 200
CELLS = ("normal", "reduction")

#: The exports' columns, in order; `reused_from` is the id of the trial whose result was copied.
EXPORT_COLUMNS = ("index", "status", "cell_hash", "reward", "val_acc", "params", "mult_adds", "gpu_seconds",
                  "device", "started_at", "finished_at", "genotype", "reused_from")


def _trained(search: Search) -> QuerySet[Trial]:
    """Finished trials that trained their cell: a repeat's copied result would count a cell twice."""
    return search.trials.filter(status=Trial.Status.FINISHED, reward__isnull=False, reused_from__isnull=True)


def _every_nth(trials: QuerySet[Trial], step: int) -> QuerySet[Trial]:
    """The trials whose index is a multiple of `step`: an even sample, chosen in SQL."""
    return trials if step <= 1 else trials.annotate(slot=Mod("index", step)).filter(slot=0)


def learning_curves(*, search: Search) -> dict[str, Any]:
    """Per-epoch validation accuracy and loss of the `CURVES_BEST` best trials and an even
    sample of the others, at most `CURVES_MAX_TRIALS` in all."""
    trained = _trained(search)
    total = trained.count()
    best = list(trained.order_by("-reward", "index").values_list("pk", flat=True)[:CURVES_BEST])
    step = math.ceil(total / (CURVES_MAX_TRIALS - CURVES_BEST)) if total else 1
    sample = list(_every_nth(trained, step).exclude(pk__in=best).order_by("index")
                  .values_list("pk", flat=True)[:CURVES_MAX_TRIALS - len(best)])
    rows = trained.filter(pk__in=[*best, *sample]).order_by("index").values("pk", "index", "reward", "epochs")
    return {
        "trained": total,
        "trials": [
            {"index": row["index"], "reward": row["reward"], "best": row["pk"] in best,
             "epoch": [epoch["epoch"] for epoch in row["epochs"]],
             "val_acc": [epoch["val_acc"] for epoch in row["epochs"]],
             "val_loss": [epoch["val_loss"] for epoch in row["epochs"]]}
            for row in rows
        ],
    }


def pareto_front(points: Sequence[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """The (cost, reward, index) points no other point beats, cheapest first: none costs less
    or the same and earns at least as much (ties go to the earlier trial)."""
    front: list[tuple[float, float, int]] = []
    for cost, reward, index in sorted(points, key=lambda point: (point[0], -point[1], point[2])):
        if not front or reward > front[-1][1]:
            front.append((cost, reward, index))
    return front


def reward_against_cost(*, search: Search) -> dict[str, Any]:
    """Reward against params and against mult-adds, each with its Pareto front (most reward for
    the least cost) and at most `COST_MAX_POINTS` of the other trials, evenly spaced."""
    rows = list(_trained(search).order_by("index").values_list("index", "reward", "params", "mult_adds"))
    step = max(1, math.ceil(len(rows) / COST_MAX_POINTS))
    figure: dict[str, Any] = {"trained": len(rows)}
    for column, cost in (("params", 2), ("mult_adds", 3)):
        points = [(value, cast(float, row[1]), row[0]) for row in rows if (value := row[cost]) is not None]
        front = pareto_front(points)
        on_front = {index for _, _, index in front}
        others = [point for point in points[::step] if point[2] not in on_front]
        figure[column] = {"points": _columns(others), "front": _columns(front)}
    return figure


def _columns(points: Sequence[tuple[float, float, int]]) -> dict[str, list]:
    return {"cost": [p[0] for p in points], "reward": [p[1] for p in points], "index": [p[2] for p in points]}


def op_frequencies(*, search: Search) -> dict[str, Any]:
    """How often each op and each input is chosen, per window of trials in sampling order, for
    the Normal and the Reduction cell: the fraction of the window's choices (every trial the
    strategy proposed, whatever became of it). A window of more than `OPS_SAMPLE_PER_WINDOW`
    trials is estimated from that many, evenly spaced."""
    if search.space != "nasnet":
        return {"available": False,
                "reason": f"Op and input frequencies count the NASNet cell space's choices; the {search.space} "
                          "space has no Normal or Reduction cell."}
    issued = search.trials_issued
    window = max(1, math.ceil(issued / OPS_WINDOWS))
    step = max(1, math.ceil(window / OPS_SAMPLE_PER_WINDOW))
    sampled = Counter[int]()
    ops = {cell: Counter[tuple[str, int]]() for cell in CELLS}
    inputs = {cell: Counter[tuple[int, int]]() for cell in CELLS}
    for index, genotype in _every_nth(search.trials.all(), step).values_list("index", "genotype"):
        slot = index // window
        sampled[slot] += 1
        for cell in CELLS:
            for block in genotype[cell]:
                ops[cell].update((op, slot) for op in block["ops"])
                inputs[cell].update((state, slot) for state in block["inputs"])
    slots = range(math.ceil(issued / window))
    return {
        "available": True,
        "window": window,
        "start": [slot * window for slot in slots],
        "sampled": [sampled[slot] for slot in slots],
        "cells": {cell: {"ops": _fractions(ops[cell], slots), "inputs": _fractions(inputs[cell], slots)}
                  for cell in CELLS},
    }


def _fractions(counter: Counter, slots: range) -> dict[str, list[float]]:
    """{choice: [its share of each window's choices]}, choices in their natural order."""
    per_slot = Counter[int]()
    for (_, slot), n in counter.items():
        per_slot[slot] += n
    choices = sorted({choice for choice, _ in counter})
    return {str(choice): [round(counter[choice, slot] / per_slot[slot], 5) if per_slot[slot] else 0.0
                          for slot in slots] for choice in choices}


def controller_updates(*, search: Search) -> dict[str, Any]:
    """The controller's entropy, loss, baseline and mean advantage per policy update."""
    if not issubclass(STRATEGY_CONFIGS.get(search.strategy, type(None)), ControllerConfig):
        return {"available": False,
                "reason": f"The {search.strategy} strategy has no controller: only REINFORCE and PPO update a policy."}
    names = ("update", "trials_told", "entropy", "loss", "baseline", "mean_advantage")
    rows = list(search.controller_updates.order_by("update").values_list(*names))
    return {"available": True, **{name: [row[i] for row in rows] for i, name in enumerate(names)}}


def trial_export_rows(*, search: Search) -> Iterator[tuple]:
    """Every trial in `EXPORT_COLUMNS` order, in sampling order, streamed from the database;
    the genotype as its stored JSON text (not decoded and encoded again)."""
    return (
        search.trials.order_by("index")
        .annotate(genotype_json=Cast("genotype", output_field=TextField()))
        .values_list("index", "status", "cell_hash", "reward", "val_acc", "params", "mult_adds", "gpu_seconds",
                     "device", "started_at", "finished_at", "genotype_json", "reused_from_id")
        .iterator(chunk_size=2000)
    )
