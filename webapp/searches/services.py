"""Writes for searches: create, pause, resume, cancel, and the control loop's step.

The control loop is event driven. `search_advance` is the only code that changes a search's
strategy state: under the search row's lock it tells the strategy every result not told yet,
asks for new cells until `parallelism` trials are in flight, and saves the strategy state in
the same transaction as the trials it concerns; only after the commit are the new trials
queued for the gpu workers. Each finished trial queues another step. `search_reconcile`
repairs what a dead worker or a lost message left behind; the database is the source of truth.

Strategies sample with replacement, as in the papers, so a search may ask for a cell again. A
repeat is a sampled model (it counts in the budget and in Figure 6) whose result is reused:
copied at once from a finished trial of the cell (this search's or the team's under the same
proxy), or, while this search's own trial of the cell is still in flight, copied when that one
ends (the repeat waits meanwhile). Failures are not copied: on a worker a trial also fails for
reasons that are not the cell's, so a repeat of a failed cell trains.

This module is imported by the web process: torch is imported only inside `search_advance`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from searchcore.errors import ConfigError, SearchcoreError, SpaceExhaustedError, UnknownNameError
from webapp import dispatch
from webapp.searches.models import Search
from webapp.trials.models import Trial

logger = logging.getLogger(__name__)

#: Bounds that keep a search within what the database columns and one control step can hold
#: (the NASNet search itself sampled 20,000 children).
MAX_BUDGET = 1_000_000
MAX_PARALLELISM = 1024
MAX_SEED = 2**31 - 1
#: A search whose first trials all fail stops after this many (fewer when its budget is smaller).
FAILURES_BEFORE_GIVING_UP = 3


# -- create -------------------------------------------------------------------------------------


def proxy_key_of(proxy: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a full proxy config: equal keys, comparable rewards."""
    text = json.dumps(proxy, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _proxy_error_field(message: str) -> str:
    """The form field a ProxyConfig error is about: `proxy.epochs` for "proxy config: epochs must
    be ...", `proxy.speed` for an unknown key, `dataset` for an unknown dataset."""
    match = re.match(r"proxy config: (?:unknown key '(\w+)'|unknown (dataset)\b|(\w+))", message)
    name = next((group for group in match.groups() if group), None) if match else None
    if name is None:
        return "proxy"
    return "dataset" if name == "dataset" else f"proxy.{name}"


def validate_search_config(
    *, space: str, strategy: str, dataset: str, budget: int, parallelism: int, seed: int, proxy: dict,
    space_options: dict, strategy_options: dict,
) -> dict[str, Any]:
    """Check a search's settings without torch; returns the full proxy dict (dataset included).

    Raises ValidationError({field: [message]}) naming every field at fault ("proxy.epochs" for a
    proxy key)."""
    from searchcore.proxy import ProxyConfig
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

    full_proxy: dict[str, Any] = {}
    if not isinstance(dataset, str) or not dataset:
        add("dataset", "choose a dataset")
    elif not isinstance(proxy, dict):
        add("proxy", "must be a JSON object")
    elif proxy.get("data_root") is not None:
        add("proxy.data_root", "is set by the server (CELLSEARCH_DATA_ROOT), not per search")
    else:
        try:
            full_proxy = ProxyConfig.from_dict({**proxy, "dataset": dataset}).to_dict()
        except (ConfigError, TypeError, ValueError) as exc:
            add(_proxy_error_field(str(exc)), str(exc))
    if errors:
        raise ValidationError(errors)
    return full_proxy


@transaction.atomic
def search_create(
    *, user, space: str, strategy: str, dataset: str, budget: int, parallelism: int, seed: int, proxy: dict,
    name: str = "", space_options: dict | None = None, strategy_options: dict | None = None,
    keep_checkpoints: bool = False,
) -> Search:
    """A new search of the user's team, queued: its first control step runs once this commits."""
    from webapp.teams.services import team_ensure_for_user

    space_options = {} if space_options is None else space_options
    strategy_options = {} if strategy_options is None else strategy_options
    full_proxy = validate_search_config(
        space=space, strategy=strategy, dataset=dataset, budget=budget, parallelism=parallelism, seed=seed,
        proxy=proxy, space_options=space_options, strategy_options=strategy_options,
    )
    if len(name) > 200:
        raise ValidationError({"name": ["at most 200 characters"]})
    search = Search.objects.create(
        team=team_ensure_for_user(user=user), owner=user, name=name, space=space, space_options=space_options,
        strategy=strategy, strategy_options=strategy_options, dataset=dataset, proxy=full_proxy,
        proxy_key=proxy_key_of(full_proxy), budget=budget, parallelism=parallelism, seed=seed,
        keep_checkpoints=keep_checkpoints, status=Search.Status.QUEUED,
    )
    dispatch.queue_advance_search(search_id=search.pk)
    return search


# -- steering -------------------------------------------------------------------------------------


def _locked(search: Search) -> Search:
    return Search.objects.select_for_update().get(pk=search.pk)


def _refresh_caller(search: Search, locked: Search) -> Search:
    """Copy the new state onto the caller's object (which may carry annotations) and return it."""
    for field in ("status", "started_at", "finished_at", "error", "updated_at"):
        setattr(search, field, getattr(locked, field))
    return search


@transaction.atomic
def search_pause(*, search: Search) -> Search:
    """Ask for no new trials; trials already asked still train, and are told as they finish."""
    locked = _locked(search)
    if locked.status not in Search.ACTIVE:
        raise ValidationError({"status": [f"only a queued or running search can be paused; this one is {locked.status}"]})
    locked.status = Search.Status.PAUSED
    locked.save(update_fields=["status", "updated_at"])
    return _refresh_caller(search, locked)


@transaction.atomic
def search_resume(*, search: Search) -> Search:
    """Carry on a paused search: its next control step runs once this commits."""
    locked = _locked(search)
    if locked.status != Search.Status.PAUSED:
        raise ValidationError({"status": [f"only a paused search can be resumed; this one is {locked.status}"]})
    locked.status = Search.Status.RUNNING if locked.started_at else Search.Status.QUEUED
    locked.save(update_fields=["status", "updated_at"])
    dispatch.queue_advance_search(search_id=locked.pk)
    return _refresh_caller(search, locked)


@transaction.atomic
def search_cancel(*, search: Search) -> Search:
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
    return _refresh_caller(search, locked)


# -- the control step -----------------------------------------------------------------------------


def _load_strategy(search: Search):
    import torch

    from searchcore.spaces import create_space
    from searchcore.strategies import create_strategy

    space = create_space(search.space, **search.space_options)
    strategy = create_strategy(search.strategy, space, seed=search.seed, **search.strategy_options)
    if search.strategy_state:
        strategy.load_state_dict(torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True))
    return strategy


def _dump_strategy(strategy) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(strategy.state_dict(), buffer)
    return buffer.getvalue()


def _canonical_dict(genotype) -> dict:
    canonical = getattr(genotype, "canonical", None)
    return (canonical() if canonical else genotype).to_dict()


def _reusable_trial(search: Search, cell_hash: str) -> Trial | None:
    """A finished trial that trained the same cell under the same proxy config for the same team,
    in this search or another."""
    return (
        Trial.objects.filter(cell_hash=cell_hash, status=Trial.Status.FINISHED, reward__isnull=False,
                             search__team_id=search.team_id, search__proxy_key=search.proxy_key,
                             reused_from__isnull=True)
        .order_by("finished_at", "pk")
        .first()
    )


def _training_trial(search: Search, cell_hash: str) -> Trial | None:
    """This search's trial that trains the cell now or waits for a worker to, if any."""
    return (
        search.trials.filter(cell_hash=cell_hash, status__in=(Trial.Status.PENDING, Trial.Status.RUNNING),
                             reused_from__isnull=True)
        .order_by("index")
        .first()
    )


def _settle_waiting(search: Search, now) -> list[tuple[int, str]]:
    """Settle the waiting trials whose source has ended: copy its result, or, when it left none
    (failed or cancelled), queue the first of them for training and let the others wait on that
    one, so a cell never trains twice at once. Returns the (trial id, task id)s to queue."""
    sends: list[tuple[int, str]] = []
    replacements: dict[str, Trial] = {}
    for trial in search.trials.filter(status=Trial.Status.WAITING).select_related("reused_from").order_by("index"):
        source = trial.reused_from
        if source is not None and source.status in Trial.IN_FLIGHT:
            continue
        if source is not None and source.status == Trial.Status.FINISHED:
            changes = {"status": Trial.Status.FINISHED, "reward": source.reward, "val_acc": source.val_acc,
                       "params": source.params, "mult_adds": source.mult_adds, "epochs": source.epochs,
                       "started_at": now, "finished_at": now}
        elif trial.cell_hash in replacements:
            changes = {"reused_from": replacements[trial.cell_hash]}
        else:
            # heartbeat_at of a pending trial: when it was queued (the reconciler's clock).
            changes = {"status": Trial.Status.PENDING, "reused_from": None, "task_id": dispatch.new_task_id(),
                       "heartbeat_at": now}
            replacements[trial.cell_hash] = trial
            sends.append((trial.pk, changes["task_id"]))
        for name, value in changes.items():
            setattr(trial, name, value)
        trial.save(update_fields=list(changes))
    return sends


class _SearchCannotGoOn(Exception):
    """The strategy failed, or every trial so far failed (bad settings, not the database):
    the search fails with this message."""


def search_advance(*, search_id: int) -> list[int]:
    """One control step (see the module docstring). Returns the ids of the trials it queued.

    Safe to run any number of times: a step with nothing to tell and nothing to ask changes
    nothing. A strategy error fails the search: its waiting trials are cancelled, running ones
    finish (their results still count for the team's cells)."""
    try:
        return _advance(search_id)
    except _SearchCannotGoOn as exc:
        _search_fail(search_id=search_id, error=str(exc))
        return []


@transaction.atomic
def _advance(search_id: int) -> list[int]:
    from webapp.cells.services import cell_get_or_create

    search = Search.objects.select_for_update().filter(pk=search_id).first()
    if search is None or search.status in Search.ENDED:
        return []
    now = timezone.now()
    try:
        strategy = _load_strategy(search)
    except DatabaseError:
        raise
    except Exception as exc:
        raise _SearchCannotGoOn(f"could not load the strategy: {type(exc).__name__}: {exc}") from exc

    queued = _settle_waiting(search, now)
    # Tell every result not told yet, in the order the cells were asked.
    untold = list(search.trials.filter(told=False, status__in=Trial.DONE).order_by("index")
                  .values_list("pk", "index", "status", "reward"))
    for _pk, index, status, reward in untold:
        _call(strategy.tell, index, reward if status == Trial.Status.FINISHED else None)
    if untold:
        Trial.objects.filter(pk__in=[row[0] for row in untold]).update(told=True)
        _give_up_if_every_trial_fails(search)

    issued_before = search.trials_issued
    fields_changed: set[str] = set()
    if search.status != Search.Status.PAUSED:
        in_flight = search.trials.filter(status__in=Trial.IN_FLIGHT).count()
        while in_flight < search.parallelism and search.trials_issued < search.budget:
            try:
                proposal = strategy.ask()
            except SpaceExhaustedError as exc:
                # Not a failure: the strategy has proposed every cell it can find. The search
                # ends once the trials in flight are told, with the reason on its page.
                search.error = f"ended after {search.trials_issued} of {search.budget} trials: {exc}"
                search.budget = search.trials_issued
                fields_changed.update({"error", "budget"})
                break
            except DatabaseError:
                raise
            except Exception as exc:
                raise _SearchCannotGoOn(f"{type(exc).__name__}: {exc}") from exc
            if proposal.trial_id != search.trials_issued:
                raise _SearchCannotGoOn(f"the strategy asked trial {proposal.trial_id}, expected {search.trials_issued}")
            genotype = proposal.genotype.to_dict()
            cell = cell_get_or_create(cell_hash=proposal.cell_hash, genotype=_canonical_dict(proposal.genotype),
                                      space=search.space)
            common = {"search": search, "index": proposal.trial_id, "cell": cell, "genotype": genotype,
                      "cell_hash": proposal.cell_hash}
            source = _reusable_trial(search, proposal.cell_hash)
            if source is not None:
                Trial.objects.create(
                    **common, status=Trial.Status.FINISHED, reused_from=source, reward=source.reward,
                    val_acc=source.val_acc, params=source.params, mult_adds=source.mult_adds, epochs=source.epochs,
                    told=True, started_at=now, finished_at=now,
                )
                _call(strategy.tell, proposal.trial_id, source.reward)
            elif (source := _training_trial(search, proposal.cell_hash)) is not None:
                Trial.objects.create(**common, status=Trial.Status.WAITING, reused_from=source)
                in_flight += 1
            else:
                trial = Trial.objects.create(**common, status=Trial.Status.PENDING, task_id=dispatch.new_task_id())
                queued.append((trial.pk, trial.task_id))
                in_flight += 1
            search.trials_issued += 1

    fields = ["updated_at", *fields_changed]
    if search.trials_issued != issued_before or untold:
        search.strategy_state = _dump_strategy(strategy)
        fields += ["strategy_state", "trials_issued"]
    if search.status == Search.Status.QUEUED:
        search.status = Search.Status.RUNNING
        fields.append("status")
    if search.started_at is None and search.status == Search.Status.RUNNING:
        search.started_at = now
        fields.append("started_at")
    if (search.status == Search.Status.RUNNING and search.trials_issued >= search.budget
            and not search.trials.filter(told=False).exists()):
        search.status = Search.Status.FINISHED
        search.finished_at = now
        fields += ["status", "finished_at"]
    search.save(update_fields=sorted(set(fields)))
    dispatch.queue_train_trials(trials=queued)
    return [trial_id for trial_id, _ in queued]


def _give_up_if_every_trial_fails(search: Search) -> None:
    """The first trials all failing means the settings are at fault (a dataset missing on the
    workers, a device they lack), not the cells: stop instead of failing the whole budget."""
    if search.trials.filter(status=Trial.Status.FINISHED).exists():
        return
    failed = search.trials.filter(status=Trial.Status.FAILED).order_by("index")
    if failed.count() >= min(FAILURES_BEFORE_GIVING_UP, search.budget):
        raise _SearchCannotGoOn(f"the first {failed.count()} trials all failed, so the settings are likely at "
                                f"fault; the first error: {failed.first().error}")


def _call(method, *args):
    """Call into the strategy; its own errors fail the search, database errors propagate."""
    try:
        return method(*args)
    except DatabaseError:
        raise
    except Exception as exc:
        raise _SearchCannotGoOn(f"{type(exc).__name__}: {exc}") from exc


@transaction.atomic
def _search_fail(*, search_id: int, error: str) -> None:
    search = Search.objects.select_for_update().filter(pk=search_id).first()
    if search is None or search.status in Search.ENDED:
        return
    logger.error("search %s failed: %s", search_id, error)
    search.trials.filter(status__in=(Trial.Status.PENDING, Trial.Status.WAITING)).update(
        status=Trial.Status.CANCELLED, finished_at=timezone.now())
    search.status = Search.Status.FAILED
    search.error = error
    search.finished_at = timezone.now()
    search.save(update_fields=["status", "error", "finished_at", "updated_at"])


# -- the reconciler -------------------------------------------------------------------------------


def _pending_timeout() -> timedelta:
    """How long a trial may wait in the queue before its message is presumed lost."""
    return timedelta(seconds=settings.CELLSEARCH_PENDING_TIMEOUT)


def _max_attempts() -> int:
    """Claims of one trial before a worker dying under it counts as the trial's own failure."""
    return settings.CELLSEARCH_MAX_ATTEMPTS


def searches_reconcile() -> dict[str, list[int]]:
    """Repair what dead workers and lost messages left behind; returns what it did.

    - a running trial whose heartbeat is older than CELLSEARCH_HEARTBEAT_TIMEOUT lost its
      worker: it goes back to pending and is queued again, unless it was claimed
      CELLSEARCH_MAX_ATTEMPTS times already (it kills its workers): then it fails;
    - a pending trial (of a search not ended: a paused search's asked trials still train)
      queued longer than CELLSEARCH_PENDING_TIMEOUT ago is queued again when the gpu queue
      holds fewer messages than such trials (Redis restarted without its data); a duplicate
      message is harmless, the claim is atomic;
    - a queued, running or paused search with results not told, or a queued or running one
      with room for more trials in flight, gets a control step.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    requeued: list[int] = []
    failed: list[int] = []
    with transaction.atomic():
        stale = Trial.objects.filter(status=Trial.Status.RUNNING).filter(
            Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, started_at__lt=stale_before)
            | Q(heartbeat_at__isnull=True, started_at__isnull=True))
        sends = []
        for trial_id, heartbeat_at, attempts, search_status, error in stale.values_list(
                "pk", "heartbeat_at", "attempts", "search__status", "error"):
            same = Trial.objects.filter(pk=trial_id, status=Trial.Status.RUNNING, heartbeat_at=heartbeat_at)
            if search_status in Search.ENDED:  # nobody will claim it again: close it
                same.update(status=Trial.Status.CANCELLED, finished_at=now,
                            error=f"its worker stopped beating after the search was {search_status}")
                continue
            lost = (f"its worker stopped beating in attempt {attempts} of {_max_attempts()} (the worker process "
                    "died, or lost its database)")
            earlier = f"; before that: {error}" if error else ""
            if attempts >= _max_attempts():  # it takes its worker down with it (killed for memory, say)
                if same.update(status=Trial.Status.FAILED, finished_at=now, error=f"{lost}{earlier}"):
                    logger.warning("trial %s: its worker died %s times; failed", trial_id, attempts)
                    failed.append(trial_id)
                continue
            task_id = dispatch.new_task_id()
            # heartbeat_at of a pending trial: when it was last queued.
            if same.update(status=Trial.Status.PENDING, worker="", task_id=task_id, heartbeat_at=now,
                           error=f"{lost}; queued again"):
                logger.warning("trial %s: its worker stopped beating; queued again", trial_id)
                sends.append((trial_id, task_id))
        dispatch.queue_train_trials(trials=sends)
        requeued += [trial_id for trial_id, _ in sends]

    lost_before = now - _pending_timeout()
    waiting = list(Trial.objects.filter(status=Trial.Status.PENDING,
                                        search__status__in=[*Search.ACTIVE, Search.Status.PAUSED]).filter(
        Q(heartbeat_at__lt=lost_before) | Q(heartbeat_at__isnull=True, created_at__lt=lost_before))
        .values_list("pk", flat=True))
    if waiting:
        size = dispatch.gpu_queue_size()
        if size is None or size < len(waiting):
            with transaction.atomic():
                sends = []
                for trial_id in waiting:
                    task_id = dispatch.new_task_id()
                    if Trial.objects.filter(pk=trial_id, status=Trial.Status.PENDING).update(
                            task_id=task_id, heartbeat_at=now):
                        sends.append((trial_id, task_id))
                dispatch.queue_train_trials(trials=sends)
            logger.warning("queued %d waiting trials again (their messages look lost)", len(sends))
            requeued += [trial_id for trial_id, _ in sends]

    in_flight = Count("trials", filter=Q(trials__status__in=Trial.IN_FLIGHT))
    untold = Count("trials", filter=Q(trials__told=False, trials__status__in=Trial.DONE))
    nudged = list(
        Search.objects.filter(status__in=[*Search.ACTIVE, Search.Status.PAUSED])
        .annotate(in_flight=in_flight, untold=untold)
        .filter(Q(untold__gt=0) | Q(status__in=Search.ACTIVE, in_flight=0)
                | Q(status__in=Search.ACTIVE, in_flight__lt=F("parallelism"),
                    trials_issued__lt=F("budget")))
        .values_list("pk", flat=True)
    )
    for search_id in nudged:
        dispatch.queue_advance_search(search_id=search_id)
    return {"requeued": requeued, "failed": failed, "nudged": nudged}

