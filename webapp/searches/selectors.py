"""Reads of searches, always scoped to the teams of the user asking."""

from __future__ import annotations

from django.db.models import Count, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from webapp.ids import MAX_ID
from webapp.searches.models import Search
from webapp.trials.models import Trial


def _trial_count(**filters) -> Coalesce:
    """Trials of the outer search matching `filters`, counted through the (search, status) index."""
    trials = Trial.objects.filter(search=OuterRef("pk"), **filters).order_by().values("search")
    return Coalesce(Subquery(trials.annotate(n=Count("id")).values("n")), 0)


def search_list_for_user(*, user) -> QuerySet[Search]:
    """The user's teams' searches, newest first, with trial counts and the best reward.

    The counts are correlated subqueries, computed only for the rows a page shows: a join
    with GROUP BY would aggregate every trial of every search first (seconds at 100,000).
    """
    best = Trial.objects.filter(search=OuterRef("pk"), status=Trial.Status.FINISHED).order_by("-reward")
    return (
        Search.objects.filter(team__members=user)
        .select_related("owner", "team")
        .annotate(
            trials_done=_trial_count(status__in=Trial.DONE),
            trials_running=_trial_count(status=Trial.Status.RUNNING),
            best_reward=Subquery(best.values("reward")[:1]),
        )
    )


def search_get_for_user(*, user, search_id: int) -> Search:
    """One search of the user's teams, or 404 (another team's search does not exist for them)."""
    return get_object_or_404(Search.objects.filter(team__members=user).select_related("owner", "team"),
                             pk=search_id)


def search_progress(*, search: Search) -> dict:
    """Counts for the progress bar and status line."""
    counts = dict(search.trials.values_list("status").annotate(n=Count("id")).order_by())
    done = sum(counts.get(s, 0) for s in Trial.DONE)
    best = search.trials.filter(status=Trial.Status.FINISHED).aggregate(best=Max("reward"))["best"]
    return {
        "budget": search.budget,
        "done": done,
        "failed": counts.get(Trial.Status.FAILED, 0),
        "running": counts.get(Trial.Status.RUNNING, 0),
        # Not started: waiting for a worker, or for an earlier trial of the same cell.
        "pending": counts.get(Trial.Status.PENDING, 0) + counts.get(Trial.Status.WAITING, 0),
        "percent": round(100 * done / search.budget) if search.budget else 0,
        "best_reward": best,
    }


def search_workers(*, search: Search) -> list[dict]:
    """The workers busy on a search now, with the trial each is training."""
    running = search.trials.filter(status=Trial.Status.RUNNING).order_by("worker", "index")
    return [{"worker": t.worker, "trial_index": t.index, "trial_id": t.pk, "heartbeat_at": t.heartbeat_at,
             "epochs_done": len(t.epochs)} for t in running]


def searches_for_compare(*, user, search_ids: list[int]) -> list[Search]:
    """The user's searches among `search_ids`, in the order given; unknown ids are left out
    (the caller reports them)."""
    in_range = [i for i in search_ids if 0 < i <= MAX_ID]  # larger ids overflow the database driver
    found = {s.pk: s for s in Search.objects.filter(team__members=user, pk__in=in_range)}
    return [found[i] for i in search_ids if i in found]


#: Points per Figure 6 curve sent to a browser; the curves only rise, so this loses nothing visible.
COMPARE_MAX_POINTS = 2000


def compare_curves(*, searches: list[Search], ks: list[int]) -> dict:
    """Figure 6 data for several searches: each one's top-k curves and each strategy's mean."""
    from searchcore.compare import RunCurves, comparison_dict, topk_curves

    runs = []
    for search in searches:
        # Models sampled = trials evaluated (finished or failed), in the order they were asked;
        # trials still waiting or cancelled were never evaluated.
        trials = search.trials.filter(status__in=Trial.DONE).order_by("index").values_list("cell_hash", "reward", "status")
        points = ((h, r if status == Trial.Status.FINISHED else None) for h, r, status in trials.iterator())
        runs.append(RunCurves(label=f"#{search.pk} {search}", strategy=search.strategy,
                              curves=topk_curves(points, ks)))
    data = comparison_dict(runs, ks, max_points=COMPARE_MAX_POINTS)
    data["searches"] = [{"id": s.pk, "name": str(s), "strategy": s.strategy, "space": s.space,
                         "dataset": s.dataset} for s in searches]
    return data


def searches_comparable(*, searches: list[Search]) -> bool:
    """Whether the searches share one space and dataset: rewards of cells from different spaces
    or datasets are not on one scale, so Figure 6 never mixes them."""
    return len({(search.space, search.dataset) for search in searches}) <= 1
