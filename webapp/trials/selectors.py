"""Reads of trials, scoped to the user's teams."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from searchcore.errors import SearchcoreError
from searchcore.models import NetworkWidths
from searchcore.spaces import parse_genotype
from searchcore.spaces.nasnet import Genotype
from webapp.storage import stored_file_exists
from webapp.trials.models import Trial

#: Columns the trials table may sort by, and the field behind each.
TRIAL_ORDERINGS = {
    "index": "index", "-index": "-index",
    "reward": "reward", "-reward": "-reward",
    "params": "params", "-params": "-params",
    "mult_adds": "mult_adds", "-mult_adds": "-mult_adds",
    "status": "status", "-status": "-status",
}


def trial_list_for_search(*, search, status: str | None = None, ordering: str = "index",
                          after: int | None = None) -> QuerySet[Trial]:
    """A search's trials without the heavy JSON columns; `after` returns only trials with a
    larger index, so a live page fetches just what is new."""
    trials = search.trials.defer("genotype", "epochs")
    if status:
        trials = trials.filter(status=status)
    if after is not None:
        trials = trials.filter(index__gt=after)
    return trials.order_by(TRIAL_ORDERINGS.get(ordering, "index"), "index")


def trial_epochs_done(*, trial_ids: list[int]) -> dict[int, int]:
    """Epochs each trial has finished, by id: one query for the rows of a table that defers
    the epochs column."""
    if not trial_ids:
        return {}
    return {pk: len(epochs or []) for pk, epochs in Trial.objects.filter(pk__in=trial_ids).values_list("pk", "epochs")}


def trial_get_for_user(*, user, trial_id: int) -> Trial:
    return get_object_or_404(Trial.objects.select_related("search", "cell").filter(search__team__members=user),
                             pk=trial_id)


def trial_network_widths(*, trial: Trial) -> NetworkWidths | None:
    """F and the base filters of the network the trial trains: the search's proxy fixes the
    base, and F follows what the trial's normal cell concatenates. None for a genotype that
    is not a cell (the NAS-v1 space) or a stored genotype or proxy this version cannot read."""
    try:
        genotype = parse_genotype(trial.genotype)
        if not isinstance(genotype, Genotype):
            return None
        return trial.search.proxy_config.network_widths(genotype)
    except SearchcoreError:
        return None


def trial_has_checkpoint(trial: Trial) -> bool:
    """Whether the trial kept a checkpoint and its file is still in storage."""
    return stored_file_exists(trial.checkpoint)


def trial_rewards_for_search(*, search) -> list[tuple[int, float | None, str]]:
    """(index, reward, status) in sampling order: the accuracy-against-trial chart."""
    return list(search.trials.order_by("index").values_list("index", "reward", "status"))
