"""Reads of searches, always scoped to the teams of the user asking."""

from __future__ import annotations

import os
from datetime import datetime

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils import timezone

from webapp.ids import MAX_ID
from webapp.searches.models import OneShotRun, Search
from webapp.trials.models import DEVICES_PER_RUN, Trial


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


def search_oneshot_run(*, search: Search) -> OneShotRun | None:
    """A one-shot search's supernet run, once its first control step started it; None for a
    per-trial search, or before then."""
    if not search.is_oneshot:
        return None
    return OneShotRun.objects.filter(search=search).first()


def supernet_gpu_seconds(*, run: OneShotRun, now: datetime | None = None) -> float:
    """A supernet's device-seconds: those recorded (up to its last heartbeat), plus a running
    attempt's since then (at most CELLSEARCH_HEARTBEAT_TIMEOUT: a silent worker is presumed dead)."""
    seconds = run.gpu_seconds
    if run.status == OneShotRun.Status.RUNNING and run.heartbeat_at is not None:
        since_beat = ((now or timezone.now()) - run.heartbeat_at).total_seconds()
        seconds += min(float(settings.CELLSEARCH_HEARTBEAT_TIMEOUT), max(0.0, since_beat)) * DEVICES_PER_RUN
    return seconds


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
        # Not started: waiting for a worker, asked ahead of need, or waiting for an earlier trial
        # of the same cell.
        "pending": sum(counts.get(s, 0) for s in Trial.NOT_STARTED),
        "percent": round(100 * done / search.budget) if search.budget else 0,
        "best_reward": best,
    }


def search_workers(*, search: Search) -> list[dict]:
    """The workers busy on a search now, with the trial each is training; `worker_label` is the
    worker's stable `host/worker`, `worker` the process holding the claim."""
    running = search.trials.filter(status=Trial.Status.RUNNING).order_by("worker_label", "worker", "index")
    return [{"worker": t.worker, "worker_label": t.worker_label, "trial_index": t.index, "trial_id": t.pk,
             "heartbeat_at": t.heartbeat_at, "started_at": t.started_at, "attempt": t.attempts,
             "epochs_done": len(t.epochs)} for t in running]


def searches_live(*, searches) -> bool:
    """Whether any of `searches` (a page of the list) can still change: the list then polls."""
    return any(search.status not in Search.ENDED for search in searches)


def searches_for_compare(*, user, search_ids: list[int]) -> list[Search]:
    """The user's searches among `search_ids`, in the order given; unknown ids are left out
    (the caller reports them)."""
    in_range = [i for i in search_ids if 0 < i <= MAX_ID]  # larger ids overflow the database driver
    found = {s.pk: s for s in Search.objects.filter(team__members=user, pk__in=in_range)}
    return [found[i] for i in search_ids if i in found]


#: Points per Figure 6 curve sent to a browser; the curves only rise, so this loses nothing visible.
COMPARE_MAX_POINTS = 2000


def compare_curves(*, searches: list[Search], ks: list[int]) -> dict:
    """Figure 6 data for several searches: each one's top-k curves, models sampled and failed
    trials, and each strategy's mean with its 95% interval over seeds (searchcore.compare)."""
    from searchcore.compare import comparison_dict, run_curves

    runs = []
    for search in searches:
        # Models sampled = trials evaluated (finished or failed), in the order they were asked;
        # trials still waiting or cancelled (told as failed, but never evaluated) are not samples.
        evaluated = (Trial.Status.FINISHED, Trial.Status.FAILED)
        trials = search.trials.filter(status__in=evaluated).order_by("index").values_list("cell_hash", "reward", "status")
        points = ((h, r if status == Trial.Status.FINISHED else None) for h, r, status in trials.iterator())
        runs.append(run_curves(f"#{search.pk} {search}", search.strategy, points, ks))
    data = comparison_dict(runs, ks, max_points=COMPARE_MAX_POINTS)
    data["searches"] = [{"id": s.pk, "name": str(s), "strategy": s.strategy, "space": s.space,
                         "dataset": s.dataset, "seed": s.seed, "status": s.status} for s in searches]
    data["running"] = any(s.status not in Search.ENDED for s in searches)
    data["cost"] = compare_cost(searches=searches)
    return data


def searches_comparable(*, searches: list[Search]) -> bool:
    """Whether the searches share one space and dataset: rewards of cells from different spaces
    or datasets are not on one scale, so Figure 6 never mixes them."""
    return len({(search.space, search.dataset) for search in searches}) <= 1


# -- cost: device-seconds ("GPU-seconds") ----------------------------------------------------------
#
# A trial records its GPU-seconds (wall-clock seconds of every attempt × DEVICES_PER_RUN, lost
# attempts included) and its device; a search's are the sum of its trials', never stored.

#: The estimate reads the rate over the most recent finished-or-failed trials, so that a change
#: of parallelism (or of workers) shows within this many trials.
COST_RATE_WINDOW = 20
#: Finished-or-failed trials needed before an estimate is given.
COST_MIN_TRIALS = 2


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def search_cost(*, search: Search, now: datetime | None = None) -> dict:
    """What a search has cost and will cost, in device-hours ("GPU-hours"; a CPU worker's are
    its wall-clock hours, and `devices` says which):

    - `gpu_hours`: every trial's recorded GPU-seconds (a running attempt's up to its last
      heartbeat), plus the running attempts' since their last heartbeat (at most
      CELLSEARCH_HEARTBEAT_TIMEOUT: a silent worker is presumed dead after that);
    - `trials_per_gpu_hour`: finished-or-failed trials ÷ the GPU-hours recorded on them;
    - `estimate` to finish the budget at the current rate, {seconds, gpu_hours}, or nulls while
      fewer than COST_MIN_TRIALS trials are done or once the search has ended: the remaining
      trials (budget − done) ÷ the rate of the last COST_RATE_WINDOW done trials (their count ÷
      wall-clock seconds from the first one's claim to the last one's end) → seconds; the
      remaining trials × the mean GPU-seconds of a done trial → GPU-hours.

    Two queries, whatever the size of the search: sums per device, and the running trials with
    the last COST_RATE_WINDOW done ones.
    """
    now = now or timezone.now()
    trials = search.trials.order_by()
    is_done = Q(status__in=Trial.DONE)
    per_device = list(trials.values("device").annotate(
        recorded=Sum("gpu_seconds"), done=Count("id", filter=is_done),
        done_seconds=Coalesce(Sum("gpu_seconds", filter=is_done), 0.0)))
    recorded = sum(row["recorded"] or 0.0 for row in per_device)
    done = sum(row["done"] for row in per_device)
    done_seconds = sum(row["done_seconds"] for row in per_device)
    last_done = (trials.filter(is_done).order_by(F("finished_at").desc(nulls_last=True), "-index")
                 .values("pk")[:COST_RATE_WINDOW])
    recent = list(trials.filter(Q(status=Trial.Status.RUNNING) | Q(pk__in=last_done))
                  .values_list("status", "started_at", "finished_at", "heartbeat_at"))
    beat_limit = float(settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    in_flight = sum(min(beat_limit, max(0.0, (now - beat).total_seconds())) * DEVICES_PER_RUN
                    for status, _, _, beat in recent if status == Trial.Status.RUNNING and beat is not None)
    window = [(started, finished) for status, started, finished, _ in recent if status in Trial.DONE]
    estimate: dict[str, float | None] = {"seconds": None, "gpu_hours": None}
    remaining = max(0, search.budget - done)
    if search.status not in Search.ENDED and done >= COST_MIN_TRIALS and window:
        starts = [started for started, _ in window if started is not None]
        ends = [finished for _, finished in window if finished is not None]
        span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
        if span > 0:
            estimate = {"seconds": remaining * span / len(window), "gpu_hours": _hours(remaining * done_seconds / done)}
    run = search_oneshot_run(search=search)
    if run is not None:
        recorded += supernet_gpu_seconds(run=run, now=now)
    return {
        "gpu_hours": _hours(recorded + in_flight),
        "trials_per_gpu_hour": done / _hours(done_seconds) if done_seconds > 0 else None,
        "trials_done": done,
        "remaining": remaining,
        "devices": sorted(row["device"] for row in per_device if row["device"]),
        "estimate": estimate,
    }


def search_cost_curve(*, search: Search) -> dict:
    """The best reward so far against the GPU-hours spent, in the order trials ended (finished
    or failed): one point where the best improves, and one at the total (a step line: "hv").
    Lists `gpu_hours`, `best`."""
    rows = (search.trials.filter(status__in=Trial.DONE).order_by(F("finished_at").asc(nulls_first=True), "index")
            .values_list("status", "reward", "gpu_seconds"))
    hours: list[float] = []
    best: list[float] = []
    run = search_oneshot_run(search=search)  # a one-shot search's trials come after its supernet's cost
    spent, best_so_far = (run.gpu_seconds if run is not None else 0.0), None
    for status, reward, seconds in rows.iterator():
        spent += seconds
        if status == Trial.Status.FINISHED and reward is not None and (best_so_far is None or reward > best_so_far):
            best_so_far = reward
            hours.append(round(spent / 3600, 6))
            best.append(round(reward, 5))
    if best_so_far is not None and hours[-1] != round(spent / 3600, 6):
        hours.append(round(spent / 3600, 6))
        best.append(round(best_so_far, 5))
    return {"gpu_hours": hours, "best": best}


def best_reward_per_gpu_hour(curve: dict) -> float | None:
    """Best reward per GPU-hour: the best reward the search reached ÷ the GPU-hours it had spent
    when it reached it (every trial that ended before it, and it, failed ones included).
    None before any reward, or when reaching it cost nothing recorded."""
    if not curve["best"]:
        return None
    top = max(curve["best"])
    hours = curve["gpu_hours"][curve["best"].index(top)]
    return top / hours if hours > 0 else None


def compare_cost(*, searches: list[Search]) -> dict:
    """Cost beside Figure 6: per search its best-reward-against-GPU-hours curve, best reward,
    GPU-hours and best reward per GPU-hour (best_reward_per_gpu_hour); per strategy the best
    reward of its searches, their GPU-hours summed, and the mean of their best reward per GPU-hour."""
    rows = []
    for search in searches:
        curve = search_cost_curve(search=search)
        rows.append({"id": search.pk, "label": f"#{search.pk} {search}", "strategy": search.strategy,
                     "gpu_hours": search_cost(search=search)["gpu_hours"],
                     "best_reward": max(curve["best"]) if curve["best"] else None,
                     "best_per_gpu_hour": best_reward_per_gpu_hour(curve), "curve": curve})
    strategies = []
    for strategy in dict.fromkeys(row["strategy"] for row in rows):
        group = [row for row in rows if row["strategy"] == strategy]
        rewards = [row["best_reward"] for row in group if row["best_reward"] is not None]
        ratios = [row["best_per_gpu_hour"] for row in group if row["best_per_gpu_hour"] is not None]
        strategies.append({"strategy": strategy, "searches": len(group),
                           "best_reward": max(rewards) if rewards else None,
                           "gpu_hours": sum(row["gpu_hours"] or 0.0 for row in group),
                           "best_per_gpu_hour": sum(ratios) / len(ratios) if ratios else None})
    return {"searches": rows, "strategies": strategies}


def search_activity(*, search: Search) -> QuerySet[LogEntry]:
    """The search's activity (services.activity), newest first: `user`, `change_message` and
    `action_time` for each line."""
    meta = Search._meta
    return (LogEntry.objects.filter(content_type__app_label=meta.app_label, content_type__model=meta.model_name,
                                    object_id=str(search.pk))
            .select_related("user").order_by("-action_time", "-id"))


# -- the new-search form's estimate ------------------------------------------------------------

#: The most recent of the team's trained trials that measure the workers' speed.
RATE_SAMPLE_TRIALS = 200
#: Rewards "near chance": a median within this factor of what guessing scores.
NEAR_CHANCE_FACTOR = 2.0
#: Finished trials under the same proxy that count as evidence of where its rewards sit.
MIN_HISTORY_TRIALS = 3
#: Without history, a proxy training fewer epochs than this gets a caution: the review saw 1
#: epoch at F = 48 give rewards of 7.7–24% on 10 classes, barely above chance (10%).
CAUTION_BELOW_EPOCHS = 2


def _work_rate(*, user) -> tuple[float, int] | None:
    """(mult-adds × training images per GPU-second, trials measured) over the user's teams' most
    recent trials trained to the end (not copied), or None before the first."""
    from searchcore.cost import dataset_shape

    trials = (Trial.objects.filter(search__team__members=user, status=Trial.Status.FINISHED, reused_from=None,
                                   gpu_seconds__gt=0, mult_adds__isnull=False)
              .select_related("search").order_by("-finished_at", "-id")[:RATE_SAMPLE_TRIALS])
    work = seconds = 0.0
    counted = 0
    for trial in trials:
        shape = dataset_shape(trial.search.dataset, trial.search.proxy.get("dataset_options"))
        if shape is None or shape.train_images is None or trial.mult_adds is None:
            continue
        work += trial.mult_adds * shape.train_images * len(trial.epochs)
        seconds += trial.gpu_seconds
        counted += 1
    return (work / seconds, counted) if counted and work else None


def _proxy_rewards(*, user, proxy_key: str) -> list[float]:
    rewards = (Trial.objects.filter(search__team__members=user, search__proxy_key=proxy_key,
                                    status=Trial.Status.FINISHED, reward__isnull=False)
               .values_list("reward", flat=True))
    return [reward for reward in rewards if reward is not None]


def search_estimate_for_user(*, user, space: str, space_options: dict, config, budget: int | None = None) -> dict:
    """What the new-search form shows of a proxy before launch: the child's params and mult-adds
    (min, median, max over a fixed sample of random cells, counted torch-free), seconds per trial
    at the rate the user's teams' workers have trained at, and whether rewards under this proxy
    sit near chance (from the teams' trials under the same proxy config, or a caution without any).
    `config` is the search's ProxyConfig, dataset included; with a `budget`, the GPU time of all
    its trials at the median too."""
    import statistics

    from searchcore.cost import dataset_shape, estimate_proxy_cost, sample_cells
    from searchcore.errors import SearchcoreError
    from searchcore.proxy import REWARDS
    from searchcore.spaces.registry import sha256_of

    if space != "nasnet":
        return {"unavailable": f"No estimate for the {space} space: only the nasnet space's networks are counted."}
    root = os.path.join(settings.CELLSEARCH_DATA_ROOT, config.dataset)
    shape = dataset_shape(config.dataset, config.dataset_options, root)
    if shape is None:
        return {"unavailable": f"No estimate: {config.dataset}'s classes are the folders of its train/ folder, "
                               f"and {root}/train is not visible here."}
    try:
        cells = sample_cells(space_options)
    except (SearchcoreError, TypeError, ValueError) as error:
        return {"unavailable": f"No estimate: space options: {error}"}
    cost = estimate_proxy_cost(config, shape, cells)
    result: dict = {"cost": cost, "shape": shape, "epochs": config.epochs}
    rate = _work_rate(user=user)
    if rate is not None and shape.train_images is not None:
        per_mult_add = shape.train_images * config.epochs / rate[0]
        result["seconds"] = {key: getattr(cost.mult_adds, key) * per_mult_add for key in ("low", "median", "high")}
        result["rate_trials"] = rate[1]
        if budget:
            result["budget_seconds"] = budget * result["seconds"]["median"]
    chance = REWARDS.get(config.reward)([1 / shape.num_classes])
    rewards = _proxy_rewards(user=user, proxy_key=sha256_of(config.to_dict()))
    result.update(chance=chance, history=len(rewards))
    if len(rewards) >= MIN_HISTORY_TRIALS:
        median = statistics.median(rewards)
        result.update(reward_median=median, reward_low=min(rewards), reward_high=max(rewards),
                      near_chance=median <= NEAR_CHANCE_FACTOR * chance)
    elif config.epochs < CAUTION_BELOW_EPOCHS:
        result["caution"] = CAUTION_BELOW_EPOCHS
    return result
