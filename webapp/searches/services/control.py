"""The control step: the only code that changes a search's strategy state.

The control loop is event driven. Under the search row's lock, `search_advance` settles the
trials waiting on another trial of their cell, tells the strategy every result not told yet,
issues new trials until `parallelism` take a worker and CELLSEARCH_TRIALS_AHEAD more are
ready, and saves the strategy state in the same transaction as the trials it concerns; only
after the commit are the new trials queued for the gpu workers. Each finished trial queues
another step.

Issuing ahead of need keeps workers from waiting on this step: a ready trial is asked already,
so the worker whose trial ends queues it at once (trials.services.ready_trials_queue) and the
step that tells the result runs while the next trial trains. The price is the strategy's: a
trial asked ahead has not seen the results of CELLSEARCH_TRIALS_AHEAD more trials than one
asked on need, as with that much more parallelism (0 asks only on need).

Strategies sample with replacement, as in the papers, so a search may ask for a cell again. A
repeat is a sampled model (it counts in the budget and in Figure 6) whose result is reused:
copied at once from a finished trial of the cell (this search's or the team's under the same
proxy), or, while this search's own trial of the cell is still in flight, copied when that one
ends (the repeat waits meanwhile). Failures are not copied: on a worker a trial also fails for
reasons that are not the cell's, so a repeat of a failed cell trains.

Runs on the control worker only (the web process never imports this module); torch is
imported inside the functions that need it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from searchcore.errors import SpaceExhaustedError
from searchcore.strategies.base import Proposal
from webapp import dispatch
from webapp.cells.services import cell_get_or_create
from webapp.searches.models import OneShotRun, Search
from webapp.searches.services.lifecycle import search_fail
from webapp.searches.services.oneshot import oneshot_start
from webapp.trials.models import Trial
from webapp.trials.services import ready_trials_queue

logger = logging.getLogger(__name__)

#: A search whose first trials all fail stops after this many (fewer when its budget is smaller).
FAILURES_BEFORE_GIVING_UP = 3


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
        search_fail(search_id=search_id, error=str(exc))
        return []


@transaction.atomic
def _advance(search_id: int) -> list[int]:
    search = Search.objects.select_for_update().filter(pk=search_id).first()
    if search is None or search.status in Search.ENDED:
        return []
    now = timezone.now()
    if search.is_oneshot and not _supernet_ranked(search):
        return []
    strategy = _call(_load_strategy, search, failure="could not load the strategy: ")
    handed = _hand_over_enqueued(search, strategy)
    sends = _settle_waiting(search, now)
    released = ready_trials_queue(search_id=search.pk)  # room a worker's own release did not fill
    told = _tell_results(search, strategy)
    issued_before = search.trials_issued
    changed: set[str] = {"enqueued_cells"} if handed else set()
    if search.status != Search.Status.PAUSED:
        issued, issue_changed = _issue_trials(search, strategy, now)
        sends += issued
        changed |= issue_changed
    _keep_update_stats(search, strategy)
    if search.trials_issued != issued_before or told or handed:
        search.strategy_state = _dump_strategy(strategy)
        changed |= {"strategy_state", "trials_issued"}
    _settle_search(search, now, changed)
    dispatch.queue_train_trials(trials=sends)
    return [trial_id for trial_id, _ in released + sends]


# -- the steps ----------------------------------------------------------------------------------


def _hand_over_enqueued(search: Search, strategy) -> bool:
    """Hand the cells given by hand (`Search.enqueued_cells`, see steering.search_enqueue) to the
    strategy, in order, and empty the list; the caller saves both in this transaction, so a
    crash loses none. Whether there was any."""
    if not search.enqueued_cells:
        return False
    for data in search.enqueued_cells:
        genotype = _call(strategy.space.genotype_from_dict, data, failure="a cell given by hand: ")
        _call(strategy.enqueue, genotype, failure="a cell given by hand: ")
    search.enqueued_cells = []
    return True


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


def _tell_results(search: Search, strategy) -> bool:
    """Tell every result not told yet, in the order the cells were asked; whether there was any."""
    untold = list(search.trials.filter(told=False, status__in=Trial.DONE).order_by("index")
                  .values_list("pk", "index", "status", "reward"))
    for _pk, index, status, reward in untold:
        _call(strategy.tell, index, reward if status == Trial.Status.FINISHED else None)
    if untold:
        Trial.objects.filter(pk__in=[row[0] for row in untold]).update(told=True)
        _give_up_if_every_trial_fails(search)
    return bool(untold)


def _issue_trials(search: Search, strategy, now) -> tuple[list[tuple[int, str]], set[str]]:
    """Ask the strategy for cells until `parallelism` + CELLSEARCH_TRIALS_AHEAD trials are in
    flight or the budget is issued. A repeat of a finished cell copies its result, a repeat of a
    cell in training waits for it, a new cell is queued while fewer than `parallelism` take a
    worker, and is ready otherwise. Returns the (trial id, task id)s to queue and the search's
    fields changed besides `trials_issued`."""
    sends: list[tuple[int, str]] = []
    in_flight = search.trials.filter(status__in=Trial.IN_FLIGHT).count()
    taking_a_worker = search.trials.filter(status__in=Trial.TAKING_A_WORKER).count()
    while (in_flight < search.parallelism + settings.CELLSEARCH_TRIALS_AHEAD
           and search.trials_issued < search.budget):
        try:
            proposal = _call(strategy.ask, passes=(SpaceExhaustedError,))
        except SpaceExhaustedError as exc:
            # Not a failure: the strategy has proposed every cell it can find. The search
            # ends once the trials in flight are told, with the reason on its page.
            search.error = f"ended after {search.trials_issued} of {search.budget} trials: {exc}"
            search.budget = search.trials_issued
            return sends, {"error", "budget"}
        if proposal.trial_id != search.trials_issued:
            raise _SearchCannotGoOn(f"the strategy asked trial {proposal.trial_id}, expected {search.trials_issued}")
        cell = cell_get_or_create(cell_hash=proposal.cell_hash, genotype=_canonical_dict(proposal.genotype),
                                  space=search.space)
        common = {"search": search, "index": proposal.trial_id, "cell": cell,
                  "genotype": proposal.genotype.to_dict(), "cell_hash": proposal.cell_hash,
                  "shared_weight_acc": getattr(proposal, "shared_weight_acc", None)}
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
        elif taking_a_worker < search.parallelism:
            trial = Trial.objects.create(**common, **_proxy_network_sizes(search, common["genotype"]),
                                         status=Trial.Status.PENDING, task_id=dispatch.new_task_id())
            sends.append((trial.pk, trial.task_id))
            taking_a_worker += 1
            in_flight += 1
        else:
            Trial.objects.create(**common, **_proxy_network_sizes(search, common["genotype"]),
                                 status=Trial.Status.READY)
            in_flight += 1
        search.trials_issued += 1
    return sends, set()


def _proxy_network_sizes(search: Search, genotype: dict) -> dict:
    """Params and mult-adds of the proxy network a worker will train for `genotype`, so a queued
    trial shows them. Counted without building the network (`searchcore.cost`, which its tests
    hold equal to the worker's torch count), in microseconds; the worker's own count replaces
    them when it finishes. {} where the network cannot be told here: a space other than nasnet,
    an image folder this host does not see."""
    from searchcore.cost import dataset_shape, proxy_network_cost
    from searchcore.spaces.nasnet import Genotype
    from webapp.trials.services import search_proxy_config

    if search.space != "nasnet":
        return {}
    config = search_proxy_config(search)
    shape = dataset_shape(config.dataset, config.dataset_options, config.data_root)
    if shape is None:
        return {}
    cost = proxy_network_cost(Genotype.from_dict(genotype), config, shape)
    return {"params": cost.params, "mult_adds": cost.mult_adds}


def _keep_update_stats(search: Search, strategy) -> None:
    """Save the controller's updates this step made (the tells above, repeats' included) as the
    analysis page's rows, in the transaction that saves the state counting them. Strategies
    without a controller make none."""
    for stats in getattr(strategy, "take_update_stats", list)():
        search.controller_updates.create(**stats.to_dict())


def _settle_search(search: Search, now, changed: set[str]) -> None:
    """Move the search on (queued → running, running → finished once every trial of its budget
    is told) and save it with the `changed` fields."""
    fields = {"updated_at", *changed}
    if search.status == Search.Status.QUEUED:
        search.status = Search.Status.RUNNING
        fields.add("status")
    if search.started_at is None and search.status == Search.Status.RUNNING:
        search.started_at = now
        fields.add("started_at")
    if (search.status == Search.Status.RUNNING and search.trials_issued >= search.budget
            and not search.trials.filter(told=False).exists()):
        search.status = Search.Status.FINISHED
        search.finished_at = now
        fields |= {"status", "finished_at"}
    search.save(update_fields=sorted(fields))


# -- one-shot searches -------------------------------------------------------------------------


def _supernet_ranked(search: Search) -> bool:
    """Whether a one-shot search's supernet has ranked its cells, so that its trials may be
    issued. Until then the step starts the run (unless the search is paused) and waits: the run
    queues the next step when it finishes. A run that failed for good fails the search."""
    run = search.oneshot if hasattr(search, "oneshot") else None
    if run is None and search.status != Search.Status.PAUSED:
        run = oneshot_start(search=search)
    if run is not None and run.status == OneShotRun.Status.FAILED:
        raise _SearchCannotGoOn(f"the supernet failed: {run.error}")
    return run is not None and run.status == OneShotRun.Status.FINISHED


@dataclass(frozen=True)
class RankedProposal(Proposal):
    """A cell a supernet ranked, with its shared-weight accuracy."""

    shared_weight_acc: float


class RankedCells:
    """The ask/tell face of a finished supernet's ranking: it proposes the cells it ranked best,
    best first, and learns nothing from their standalone results (the ranking is done)."""

    def __init__(self, search: Search) -> None:
        from searchcore.spaces import create_space

        self.space = create_space(search.space, **search.space_options)
        self.top = search.oneshot.top
        self.asked = search.trials_issued

    def ask(self) -> RankedProposal:
        if self.asked >= len(self.top):
            raise SpaceExhaustedError(f"the supernet ranked {len(self.top)} unique cells")
        cell = self.top[self.asked]
        proposal = RankedProposal(self.asked, self.space.genotype_from_dict(cell["genotype"]), cell["cell_hash"],
                                  cell["val_acc"])
        self.asked += 1
        return proposal

    def tell(self, trial_id: int, reward: float | None) -> None:
        """Nothing to learn."""

    def enqueue(self, genotype) -> None:
        raise ValueError("a one-shot search trains the cells its supernet ranked, not cells given by hand")

    def state_dict(self) -> dict:
        return {}


# -- helpers ------------------------------------------------------------------------------------


def _load_strategy(search: Search):
    import torch

    from searchcore.spaces import create_space
    from searchcore.strategies import create_strategy

    if search.is_oneshot:
        return RankedCells(search)
    space = create_space(search.space, **search.space_options)
    strategy = create_strategy(search.strategy, space, seed=search.seed, **search.strategy_options)
    if search.strategy_state:
        strategy.load_state_dict(torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True))
    elif search.forked_state:  # a fork's first step: start from what its parent had learned
        strategy.load_fork(torch.load(io.BytesIO(bytes(search.forked_state)), weights_only=True))
    return strategy


def _dump_strategy(strategy) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(strategy.state_dict(), buffer)
    return buffer.getvalue()


def _call(method, *args, failure: str = "", passes: tuple[type[Exception], ...] = ()):
    """Call into the strategy: its own errors fail the search (the message starts with
    `failure`); database errors, and the `passes` the caller handles, propagate."""
    try:
        return method(*args)
    except DatabaseError:
        raise
    except passes:
        raise
    except Exception as exc:
        raise _SearchCannotGoOn(f"{failure}{type(exc).__name__}: {exc}") from exc


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
        search.trials.filter(cell_hash=cell_hash, status__in=(*Trial.TAKING_A_WORKER, Trial.Status.READY),
                             reused_from__isnull=True)
        .order_by("index")
        .first()
    )


def _give_up_if_every_trial_fails(search: Search) -> None:
    """The first trials all failing means the settings are at fault (a dataset missing on the
    workers, a device they lack), not the cells: stop instead of failing the whole budget."""
    if search.trials.filter(status=Trial.Status.FINISHED).exists():
        return
    failed = search.trials.filter(status=Trial.Status.FAILED).order_by("index")
    if failed.count() >= min(FAILURES_BEFORE_GIVING_UP, search.budget):
        first_error = failed.values_list("error", flat=True).first()
        raise _SearchCannotGoOn(f"the first {failed.count()} trials all failed, so the settings are likely at "
                                f"fault; the first error: {first_error}")
