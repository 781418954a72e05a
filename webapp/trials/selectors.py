"""Reads of trials, scoped to the user's teams."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

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


def trial_get_for_user(*, user, trial_id: int) -> Trial:
    return get_object_or_404(Trial.objects.select_related("search", "cell").filter(search__team__members=user),
                             pk=trial_id)


def trial_rewards_for_search(*, search) -> list[tuple[int, float | None, str]]:
    """(index, reward, status) in sampling order: the accuracy-against-trial chart."""
    return list(search.trials.order_by("index").values_list("index", "reward", "status"))
