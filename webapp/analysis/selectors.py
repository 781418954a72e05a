"""The analysis page's figures, each of a bounded size whatever the search's (100,000 trials).

Every figure's data is plain JSON for Plotly. Learning curves show at most
`CURVES_MAX_TRIALS` trials (the best and an evenly spaced sample, chosen in SQL), reward against
cost shows the Pareto front (found in SQL) and at most `COST_MAX_POINTS` other trials, and op
frequencies decode at most `OPS_SAMPLE_PER_WINDOW` genotypes in each of `OPS_WINDOWS` windows.
The search comes from `search_get_for_user`, so it is one of the user's teams'.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import F, FloatField, Max, QuerySet, TextField, Value, Window
from django.db.models.expressions import RowRange
from django.db.models.functions import Cast, Coalesce, Mod

from searchcore.strategies import STRATEGY_CONFIGS, ControllerConfig
from webapp.searches.models import Search
from webapp.trials.models import Trial

CURVES_MAX_TRIALS = 50
CURVES_BEST = 10
COST_MAX_POINTS = 5000
OPS_WINDOWS = 20
OPS_SAMPLE_PER_WINDOW = 100
CELLS = ("normal", "reduction")

#: The exports' columns, in order; `reused_from` is the id of the trial whose result was copied.
EXPORT_COLUMNS = ("index", "status", "cell_hash", "reward", "val_acc", "params", "mult_adds", "gpu_seconds",
                  "device", "started_at", "finished_at", "genotype", "reused_from")


def _trained(search: Search) -> QuerySet[Trial]:
    """Finished trials that trained their cell: a repeat's copied result would count a cell twice."""
    return search.trials.filter(status=Trial.Status.FINISHED, reward__isnull=False, reused_from__isnull=True)


def _step(search: Search, count: int) -> int:
    """Every how many trials to take about `count` of the search's (a bound, not a count of its
    trained trials: counting those costs as much as reading them)."""
    return max(1, math.ceil(search.trials_issued / count))


def _every_nth(trials: QuerySet[Trial], step: int) -> QuerySet[Trial]:
    """The trials whose index is a multiple of `step`: an even sample, chosen in SQL."""
    return trials if step <= 1 else trials.annotate(slot=Mod("index", step)).filter(slot=0)


def learning_curves(*, search: Search) -> dict[str, Any]:
    """Per-epoch validation accuracy and loss of the `CURVES_BEST` best trials and an even
    sample of the others, at most `CURVES_MAX_TRIALS` in all."""
    trained = _trained(search)
    best = list(trained.order_by("-reward", "index").values_list("pk", flat=True)[:CURVES_BEST])
    step = _step(search, CURVES_MAX_TRIALS - CURVES_BEST)
    sample = list(_every_nth(trained, step).exclude(pk__in=best).order_by("index")
                  .values_list("pk", flat=True)[:CURVES_MAX_TRIALS - len(best)])
    rows = trained.filter(pk__in=[*best, *sample]).order_by("index").values("pk", "index", "reward", "epochs")
    return {
        "issued": search.trials_issued,
        "trials": [
            {"index": row["index"], "reward": row["reward"], "best": row["pk"] in best,
             "epoch": [epoch["epoch"] for epoch in row["epochs"]],
             "val_acc": [epoch["val_acc"] for epoch in row["epochs"]],
             "val_loss": [epoch["val_loss"] for epoch in row["epochs"]]}
            for row in rows
        ],
    }


def pareto_front(trials: QuerySet[Trial], cost: str) -> QuerySet[Trial]:
    """The trials no other trial beats on (`cost`, reward), cheapest first: none costs less or the
    same and earns at least as much (of equal ones, the earliest). In SQL: each trial against the
    best reward of the trials before it in (cost, −reward, index) order, a window function."""
    order = [F(cost).asc(), F("reward").desc(), F("index").asc()]
    best_before = Window(Max("reward"), order_by=order, frame=RowRange(start=None, end=-1))
    return (trials.filter(**{f"{cost}__isnull": False})
            .annotate(best_before=Coalesce(best_before, Value(-math.inf), output_field=FloatField()))
            .filter(reward__gt=F("best_before")).order_by(*order))


def reward_against_cost(*, search: Search) -> dict[str, Any]:
    """Reward against params and against mult-adds, each with its Pareto front (most reward for
    the least cost) and at most `COST_MAX_POINTS` of the other trials, evenly spaced: the proxy's
    version of NASNet's Figure 5, "Accuracy versus computational demand (left) and number of
    parameters (right)"."""
    trained = _trained(search)
    sample = _every_nth(trained, _step(search, COST_MAX_POINTS)).order_by("index")
    figure: dict[str, Any] = {}
    for cost in ("params", "mult_adds"):
        front = list(pareto_front(trained, cost).values_list(cost, "reward", "index"))
        on_front = [index for _, _, index in front]
        others = sample.filter(**{f"{cost}__isnull": False}).exclude(index__in=on_front)
        figure[cost] = {"points": _columns(list(others.values_list(cost, "reward", "index"))),
                        "front": _columns(front)}
    return figure


def _columns(points: Sequence[tuple]) -> dict[str, list]:
    return {"cost": [p[0] for p in points], "reward": [p[1] for p in points], "index": [p[2] for p in points]}


def op_frequencies(*, search: Search) -> dict[str, Any]:
    """How often each op and each input is chosen, per window of trials in sampling order, for
    the Normal and the Reduction cell: the fraction of the window's choices (every trial the
    strategy proposed, whatever became of it). These are NASNet's per-block steps 1–4: "Select a
    hidden state from h_i, h_i−1 or from the set of hidden states created in previous blocks"
    (twice), then "Select an operation to apply" to each. A window of more than
    `OPS_SAMPLE_PER_WINDOW` trials is estimated from that many, evenly spaced."""
    if search.space != "nasnet":
        return {"available": False,
                "reason": f"Op and input frequencies count the NASNet cell space's choices; the {search.space} "
                          "space has no Normal or Reduction cell."}
    last = search.trials.aggregate(last=Max("index"))["last"]  # the trials' own, not trials_issued
    issued = 0 if last is None else last + 1
    window = max(1, math.ceil(issued / OPS_WINDOWS))
    step = max(1, math.ceil(window / OPS_SAMPLE_PER_WINDOW))
    slots = range(math.ceil(issued / window))
    sampled = [0 for _ in slots]
    # every choice of a window, per cell and kind; counted once at the end (Counter runs in C)
    chosen: dict[tuple[str, str], list[list]] = {(cell, kind): [[] for _ in slots]
                                                 for cell in CELLS for kind in ("ops", "inputs")}
    trials = _every_nth(search.trials.all(), step).annotate(text=Cast("genotype", output_field=TextField()))
    for index, text in trials.values_list("index", "text"):
        slot, genotype = index // window, json.loads(text)  # the JSON field's own decoding is twice as slow
        sampled[slot] += 1
        for cell in CELLS:
            blocks = genotype[cell]
            chosen[cell, "ops"][slot] += [op for block in blocks for op in block["ops"]]
            chosen[cell, "inputs"][slot] += [state for block in blocks for state in block["inputs"]]
    return {
        "available": True,
        "window": window,
        "start": [slot * window for slot in slots],
        "sampled": sampled,
        "cells": {cell: {kind: _fractions(chosen[cell, kind]) for kind in ("ops", "inputs")} for cell in CELLS},
    }


def _fractions(windows: list[list]) -> dict[str, list[float]]:
    """{choice: [its share of each window's choices]}, choices in their natural order."""
    counts = [Counter(choices) for choices in windows]
    names = sorted({choice for count in counts for choice in count})
    return {str(choice): [round(count[choice] / count.total(), 5) if count else 0.0 for count in counts]
            for choice in names}


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
