"""A search's life as its user steers it: create (after validating its settings), pause,
resume and cancel.

Imported by the web process: searchcore is used for its torch-free checks only.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from searchcore.errors import ConfigError, DatasetNotFoundError, SearchcoreError, UnknownNameError
from searchcore.oneshot import SAMPLERS, oneshot_config_for_search
from searchcore.proxy import MAX_SEED, ProxyConfig
from searchcore.spaces.registry import sha256_of
from webapp import dispatch
from webapp.runs.services.lifecycle import run_cancel, run_pause, run_resume
from webapp.searches.models import OneShotRun, Search
from webapp.searches.services.activity import search_activity_record
from webapp.teams.models import Team
from webapp.teams.permissions import require_perm
from webapp.teams.services import team_ensure_for_user
from webapp.trials.models import Trial

#: Bounds that keep a search within what the database columns and one control step can hold
#: (the NASNet search itself sampled 20,000 children).
MAX_BUDGET = 1_000_000
MAX_PARALLELISM = 1024

logger = logging.getLogger(__name__)


# -- create -------------------------------------------------------------------------------------


def _proxy_error_field(exc: ConfigError) -> str:
    """The form field a ProxyConfig error is about: `dataset` for the dataset (a field of the
    search), `proxy.<field>` for a proxy setting, `proxy` when the error names none."""
    if exc.field is None:
        return "proxy"
    return "dataset" if exc.field == "dataset" else f"proxy.{exc.field}"


def validate_search_config(
    *, space: str, strategy: str, dataset: str, budget: int, parallelism: int, seed: int, proxy: dict,
    space_options: dict, strategy_options: dict,
) -> ProxyConfig:
    """Check a search's settings without torch; returns its proxy config, dataset included.

    Raises ValidationError({field: [message]}) naming every field at fault ("proxy.epochs" for a
    proxy key)."""
    from searchcore.spaces import create_space
    from searchcore.strategies import validate_strategy_options

    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not isinstance(space_options, dict):
        add("space_options", "must be a JSON object")
    else:
        try:
            create_space(space, **space_options)
        except UnknownNameError as exc:
            add("space", str(exc))
        except (SearchcoreError, TypeError, ValueError) as exc:
            add("space_options", str(exc))
    if not isinstance(strategy_options, dict):
        add("strategy_options", "must be a JSON object")
    elif strategy in SAMPLERS:
        pass  # a one-shot search's options are checked with its proxy, below
    else:
        try:
            validate_strategy_options(strategy, strategy_options)
        except UnknownNameError as exc:
            add("strategy", str(exc))
        except (SearchcoreError, TypeError, ValueError) as exc:
            add("strategy_options", str(exc))

    if not is_int(budget) or not 1 <= budget <= MAX_BUDGET:
        add("budget", f"must be a whole number from 1 to {MAX_BUDGET:,}, got {budget!r}")
    if not is_int(parallelism) or not 1 <= parallelism <= MAX_PARALLELISM:
        add("parallelism", f"must be a whole number from 1 to {MAX_PARALLELISM}, got {parallelism!r}")
    elif is_int(budget) and parallelism > budget:
        add("parallelism", f"must not exceed the budget ({budget}), got {parallelism}")
    if not is_int(seed) or not 0 <= seed <= MAX_SEED:
        add("seed", f"must be a whole number from 0 to {MAX_SEED}, got {seed!r}")

    config: ProxyConfig | None = None
    if not isinstance(dataset, str) or not dataset:
        add("dataset", "choose a dataset")
    elif not isinstance(proxy, dict):
        add("proxy", "must be a JSON object")
    elif proxy.get("data_root") is not None:
        add("proxy.data_root", "is set by the server (CELLSEARCH_DATA_ROOT), not per search")
    else:
        config = _proxy_config_collecting_errors(proxy, dataset, add)
        if config is not None:
            _check_data_files(config.dataset, add)
    if strategy in SAMPLERS and config is not None and isinstance(strategy_options, dict) and is_int(budget) \
            and is_int(seed) and isinstance(space_options, dict):
        try:
            oneshot_config_for_search(strategy, strategy_options, proxy=config, top_k=budget, seed=seed, space=space,
                                      space_options=space_options)
        except ConfigError as exc:
            add(exc.field or "strategy_options", str(exc))
    if errors:
        raise ValidationError(errors)
    assert config is not None  # each branch that leaves it unset adds an error
    return config


def _proxy_config_collecting_errors(proxy: dict, dataset: str, add) -> ProxyConfig | None:
    """The ProxyConfig, or None after `add`ing every setting at fault: ProxyConfig stops at its
    first error, so the setting it names is set aside and the rest checked again, one pass for
    the user however many are wrong."""
    remaining = dict(proxy)
    while True:
        try:
            return ProxyConfig.from_dict({**remaining, "dataset": dataset})
        except ConfigError as exc:
            add(_proxy_error_field(exc), str(exc))
            if exc.field not in remaining or exc.field == "dataset":  # nothing of the proxy's own left to set aside
                return None
            del remaining[exc.field]
        except (TypeError, ValueError) as exc:
            add("proxy", str(exc))
            return None


def _check_data_files(dataset: str, add) -> None:
    """The files a dataset's loader reads on the workers, checked before anything is queued (a
    cifar10 search without its batches used to fail minutes later on a worker). Labs whose web
    host does not see the workers' CELLSEARCH_DATA_ROOT turn it off (CELLSEARCH_CHECK_DATA_FILES)."""
    from searchcore.data import DATASETS, check_dataset_root

    if not settings.CELLSEARCH_CHECK_DATA_FILES or not DATASETS.get(dataset).needs_root:
        return
    root = os.path.join(settings.CELLSEARCH_DATA_ROOT, dataset)
    try:
        check_dataset_root(dataset, root)
    except (DatasetNotFoundError, ConfigError) as exc:
        add("dataset", f"{exc} (the workers read {dataset} from CELLSEARCH_DATA_ROOT/{dataset})")


@transaction.atomic
def search_launch_team(*, user, team: Team | int | None = None) -> Team:
    """The team a new search of the user's goes to: `team` (a Team or its id) when the user is in
    it; without one, the user's only team (made on first use for a user in none). A team the
    user is not in, or no team for a user in several, is a ValidationError on `team`; whether
    the user's role there may launch is `require_perm`'s to say."""
    teams = Team.objects.filter(membership__user=user).order_by("name", "id")
    if team is None:
        mine = list(teams[:21])
        if not mine:
            return team_ensure_for_user(user=user)
        if len(mine) == 1:
            return mine[0]
        names = ", ".join(f"{t.name} ({t.pk})" for t in mine[:20])
        raise ValidationError({"team": [f"you are in several teams; pick the search's team by id: {names}"]})
    team_id = team.pk if isinstance(team, Team) else team
    found = teams.filter(pk=team_id).first()
    if found is None:
        raise ValidationError({"team": [f"no team of yours has id {team_id}"]})
    return found


def search_create(
    *, user, space: str, strategy: str, dataset: str, budget: int, parallelism: int, seed: int, proxy: dict,
    name: str = "", space_options: dict | None = None, strategy_options: dict | None = None,
    keep_checkpoints: bool = False, team: Team | int | None = None,
) -> Search:
    """A new search of `team` (see `search_launch_team`), queued: its first control step runs
    once this commits. PermissionDenied unless the user's role there holds searches.launch."""
    launch_team = search_launch_team(user=user, team=team)
    require_perm(user, "searches.launch", launch_team)
    space_options = {} if space_options is None else space_options
    strategy_options = {} if strategy_options is None else strategy_options
    config = validate_search_config(
        space=space, strategy=strategy, dataset=dataset, budget=budget, parallelism=parallelism, seed=seed,
        proxy=proxy, space_options=space_options, strategy_options=strategy_options,
    )
    if len(name) > 200:
        raise ValidationError({"name": ["at most 200 characters"]})
    full_proxy = config.to_dict()
    search = Search.objects.create(
        team=launch_team, owner=user, name=name, space=space, space_options=space_options,
        strategy=strategy, strategy_options=strategy_options, dataset=config.dataset,
        proxy={key: value for key, value in full_proxy.items() if key != "dataset"},
        proxy_key=sha256_of(full_proxy), budget=budget, parallelism=parallelism, seed=seed,
        keep_checkpoints=keep_checkpoints, status=Search.Status.QUEUED,
    )
    dispatch.queue_advance_search(search_id=search.pk)
    return search


# -- one-shot searches --------------------------------------------------------------------------

ONESHOT_NOUN = "one-shot run"


def queue_oneshot(run_id: int, task_id: str) -> None:
    """Send a one-shot search's supernet run to the gpu queue once this commits (webapp.runs' Queue)."""
    dispatch.queue_train_oneshot(run_id=run_id, task_id=task_id)


# -- steering -------------------------------------------------------------------------------------


def _locked(search: Search) -> Search:
    return Search.objects.select_for_update().get(pk=search.pk)


def _refresh_caller(search: Search, locked: Search, *, user, message: str) -> Search:
    """Record `message` in the search's activity when a `user` made the change, copy the new
    state onto the caller's object (which may carry annotations) and return it."""
    if user is not None:
        search_activity_record(user=user, search=locked, message=message)
    for field in ("status", "started_at", "finished_at", "error", "updated_at"):
        setattr(search, field, getattr(locked, field))
    return search


@transaction.atomic
def search_pause(*, search: Search, user=None) -> Search:
    """Ask for no new trials; trials already asked still train, and are told as they finish.
    `user`: who paused it, for the search's activity (as for resume and cancel)."""
    locked = _locked(search)
    if locked.status not in Search.ACTIVE:
        raise ValidationError({"status": [f"only a queued or running search can be paused; this one is {locked.status}"]})
    locked.status = Search.Status.PAUSED
    locked.save(update_fields=["status", "updated_at"])
    run = OneShotRun.objects.filter(search=locked, status__in=OneShotRun.IN_FLIGHT, pause_requested=False).first()
    if run is not None:  # its supernet: a queued run at once, a running one after its epoch
        run_pause(run, noun=ONESHOT_NOUN)
    return _refresh_caller(search, locked, user=user, message="paused")


@transaction.atomic
def search_resume(*, search: Search, user=None) -> Search:
    """Carry on a paused search: its next control step runs once this commits."""
    locked = _locked(search)
    if locked.status != Search.Status.PAUSED:
        raise ValidationError({"status": [f"only a paused search can be resumed; this one is {locked.status}"]})
    locked.status = Search.Status.RUNNING if locked.started_at else Search.Status.QUEUED
    locked.save(update_fields=["status", "updated_at"])
    dispatch.queue_advance_search(search_id=locked.pk)
    run = OneShotRun.objects.filter(search=locked).first()
    if run is not None and (run.status == OneShotRun.Status.PAUSED or run.pause_requested):
        run_resume(run, noun=ONESHOT_NOUN, queue=queue_oneshot)  # on from its last checkpoint
    return _refresh_caller(search, locked, user=user, message="resumed")


@transaction.atomic
def search_cancel(*, search: Search, user=None) -> Search:
    """Stop for good: waiting and running trials are cancelled (running ones are terminated
    once this commits) and the strategy is told nothing more."""
    locked = _locked(search)
    if locked.status in Search.ENDED:
        raise ValidationError({"status": [f"this search has already ended ({locked.status})"]})
    running = list(locked.trials.filter(status=Trial.Status.RUNNING).exclude(task_id="")
                   .values_list("task_id", flat=True))
    locked.trials.filter(status__in=Trial.IN_FLIGHT).update(status=Trial.Status.CANCELLED, finished_at=timezone.now())
    locked.status = Search.Status.CANCELLED
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "finished_at", "updated_at"])
    dispatch.queue_revoke_tasks(task_ids=running, terminate=True)
    run = OneShotRun.objects.filter(search=locked).exclude(status__in=OneShotRun.ENDED).first()
    if run is not None:  # its supernet stops for good; its checkpoint stays
        run_cancel(run, noun=ONESHOT_NOUN)
    return _refresh_caller(search, locked, user=user, message="cancelled")


@transaction.atomic
def search_fail(*, search_id: int, error: str) -> None:
    """End the search with `error`: its strategy failed, or a trial found settings no trial can
    train with. Waiting trials are cancelled; running ones finish and still count for the
    team's cells. A search that has already ended keeps its state."""
    search = Search.objects.select_for_update().filter(pk=search_id).first()
    if search is None or search.status in Search.ENDED:
        return
    logger.error("search %s failed: %s", search_id, error)
    search.trials.filter(status__in=Trial.NOT_STARTED).update(
        status=Trial.Status.CANCELLED, finished_at=timezone.now())
    search.status = Search.Status.FAILED
    search.error = error
    search.finished_at = timezone.now()
    search.save(update_fields=["status", "error", "finished_at", "updated_at"])
