"""Steering a search while it runs: change its parallelism and budget, cancel one of its trials,
enqueue a cell given by hand, fork a new search from chosen trials.

Every change is checked against the team's permission table (searches.steer, searches.launch for
a fork), validated (ValidationError `{field: [reason]}`, a 400 from the API, a form error on the
page), and recorded in the search's activity in the same transaction: one line per change
("parallelism 2 → 4", "budget 10 → 20", "trial 3 cancelled") with its actor.

Imported by the web process: no torch.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from searchcore.errors import SearchcoreError
from searchcore.proxy import MAX_SEED
from webapp import dispatch
from webapp.cells.models import Cell
from webapp.searches.models import Search
from webapp.searches.services.activity import search_activity_record
from webapp.searches.services.lifecycle import MAX_BUDGET, MAX_PARALLELISM, search_create
from webapp.teams.permissions import require_perm
from webapp.trials.models import Trial

#: Searches whose settings may change: those not ended, and a finished one whose budget is
#: extended (see `search_steer`).
STEERABLE = (Search.Status.QUEUED, Search.Status.RUNNING, Search.Status.PAUSED, Search.Status.FINISHED)
#: Searches that take a cell by hand: those whose strategy still asks.
ENQUEUEABLE = (Search.Status.QUEUED, Search.Status.RUNNING, Search.Status.PAUSED)
#: Cells waiting for the control step at most (it hands them all over at its next run), and
#: the trials a fork may start from.
MAX_ENQUEUED = 100


#: Why a one-shot search refuses a per-trial search's steering.
ONESHOT_FIXED = "a one-shot search takes no {what}"
ONESHOT_NO_FORK = ONESHOT_FIXED.format(what="forks: its sampler's state lives in its supernet's checkpoint, not in "
                                            "a strategy state")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@transaction.atomic
def search_steer(*, user, search: Search, parallelism: int | None = None, budget: int | None = None) -> Search:
    """Change a search's parallelism and budget (None leaves one as it is).

    - The budget stays within 1..MAX_BUDGET and never below the trials already issued; the
      parallelism within 1..MAX_PARALLELISM and not above the budget, as at creation.
    - A queued, running or paused search takes both. More room (a higher parallelism or budget)
      queues a control step once this commits, which issues the extra trials at once (a paused
      search issues them when resumed). A lower parallelism kills nothing: running trials finish
      and fewer are issued after them.
    - A finished search whose budget is extended runs again: the strategy continues from its
      saved state, as a mature tool extends an experiment (NNI's `nnictl update trialnum`). A
      cancelled or failed search has ended for good: its strategy was stopped mid-step, so
      nothing is changed.

    Records one log entry per change and returns the caller's `search` refreshed. PermissionDenied
    unless the user's role holds searches.steer; ValidationError naming the field otherwise."""
    require_perm(user, "searches.steer", search)
    locked = Search.objects.select_for_update().get(pk=search.pk)
    errors: dict[str, list[str]] = {}
    if locked.status not in STEERABLE:
        raise ValidationError({"status": [f"this search has ended ({locked.status}); only a queued, running, "
                                          "paused or finished one can be steered"]})
    new_budget = locked.budget if budget is None else budget
    new_parallelism = locked.parallelism if parallelism is None else parallelism
    if locked.is_oneshot and new_budget != locked.budget:
        errors["budget"] = [ONESHOT_FIXED.format(what="its budget: the top cells its supernet ranks for standalone "
                                                      "training are counted when the supernet starts")]
    elif not _is_int(new_budget) or not 1 <= new_budget <= MAX_BUDGET:
        errors["budget"] = [f"must be a whole number from 1 to {MAX_BUDGET:,}, got {new_budget!r}"]
    elif new_budget < locked.trials_issued:
        errors["budget"] = [f"budget {new_budget} is below the {locked.trials_issued} trials already issued"]
    if not _is_int(new_parallelism) or not 1 <= new_parallelism <= MAX_PARALLELISM:
        errors["parallelism"] = [f"must be a whole number from 1 to {MAX_PARALLELISM}, got {new_parallelism!r}"]
    elif "budget" not in errors and new_parallelism > new_budget:
        errors["parallelism"] = [f"must not exceed the budget ({new_budget}), got {new_parallelism}"]
    if errors:
        raise ValidationError(errors)

    changes = []
    if new_parallelism != locked.parallelism:
        changes.append(f"parallelism {locked.parallelism} → {new_parallelism}")
    if new_budget != locked.budget:
        changes.append(f"budget {locked.budget} → {new_budget}")
    if not changes:
        return search
    fields = {"parallelism", "budget", "updated_at"}
    if locked.status == Search.Status.FINISHED and new_budget > locked.trials_issued:
        locked.status = Search.Status.RUNNING
        locked.finished_at = None
        locked.error = ""  # a search that ran out of cells said so here; the extension asks again
        fields |= {"status", "finished_at", "error"}
        changes.append(f"resumed: {new_budget - locked.trials_issued} more trials")
    locked.parallelism, locked.budget = new_parallelism, new_budget
    locked.save(update_fields=sorted(fields))
    for message in changes:
        search_activity_record(user=user, search=locked, message=message)
    if locked.status in Search.ACTIVE:
        # more room issues trials now; a budget lowered to what was issued lets the search end
        dispatch.queue_advance_search(search_id=locked.pk)
    for field in ("parallelism", "budget", "status", "finished_at", "error", "updated_at"):
        setattr(search, field, getattr(locked, field))
    return search


@transaction.atomic
def trial_cancel(*, user, trial: Trial) -> Trial:
    """Stop one trial; the strategy is told it failed (no reward), once, at the next control step.

    A pending trial's message is revoked; a running one is terminated on its worker once this
    commits (and a worker that still runs it stops at its next beat: the trial is no longer
    its own, so it writes nothing more); a waiting repeat just stops waiting. Repeats waiting on
    it train the cell themselves, as after a failure. PermissionDenied unless the user's role
    holds searches.steer; a ValidationError on `status` when the trial has already ended."""
    require_perm(user, "searches.steer", trial.search)
    # the search's row first, as the control step locks it, then the trial's
    search = Search.objects.select_for_update().get(pk=trial.search_id)
    locked = Trial.objects.select_for_update().get(pk=trial.pk)
    if locked.status not in Trial.IN_FLIGHT:
        raise ValidationError({"status": [f"trial {locked.index} has already ended ({locked.status})"]})
    if locked.task_id and locked.status in (Trial.Status.PENDING, Trial.Status.RUNNING):
        dispatch.queue_revoke_tasks(task_ids=[locked.task_id], terminate=locked.status == Trial.Status.RUNNING)
    now = timezone.now()
    locked.status = Trial.Status.CANCELLED
    locked.finished_at = now
    locked.error = f"cancelled by {user.get_username()}"
    locked.save(update_fields=["status", "finished_at", "error"])
    search_activity_record(user=user, search=search, message=f"trial {locked.index} cancelled")
    if search.status not in Search.ENDED:
        dispatch.queue_advance_search(search_id=search.pk)  # tell it, and fill its slot in flight
    for field in ("status", "finished_at", "error"):
        setattr(trial, field, getattr(locked, field))
    return trial


def _genotype_from_input(*, user, genotype: Any, darts: Any, cell_hash: Any) -> tuple[str, Any]:
    """(the input's field name, the parsed genotype) of exactly one of the three inputs. A
    `genotype` string that is not a JSON object is read as a DARTS string (the page's textarea
    takes both). Torch-free."""
    from searchcore.spaces import parse_genotype
    from searchcore.spaces.nasnet.genotype import Genotype

    given = {name: value for name, value in (("genotype", genotype), ("darts", darts), ("cell_hash", cell_hash))
             if value is not None}
    if len(given) != 1:
        raise ValidationError({"genotype": ["give exactly one of genotype (a JSON object), darts (a DARTS "
                                            "Genotype(...) string) or cell_hash (a cell of your teams)"]})
    (field, value), = given.items()
    try:
        if field == "cell_hash":
            if not isinstance(value, str) or not value.strip():
                raise ValidationError({field: ["must be a cell's hash"]})
            cell = (Cell.objects.filter(cell_hash=value.strip().lower(), results__team__members=user)
                    .distinct().first())
            if cell is None:
                raise ValidationError({field: [f"no cell {value.strip()[:16]!r} among your teams' cells"]})
            return field, parse_genotype(cell.genotype)
        if field == "darts" or (isinstance(value, str) and not value.lstrip().startswith("{")):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError({field: ["must be a DARTS Genotype(...) string"]})
            return field, Genotype.from_darts(value.strip())
        if not isinstance(value, dict | str):
            raise ValidationError({field: ["must be a JSON object or a DARTS Genotype(...) string"]})
        return field, parse_genotype(value)
    except SearchcoreError as exc:
        raise ValidationError({field: [str(exc)]}) from exc
    except (TypeError, ValueError) as exc:  # a reader's own slip on odd input: still the input's fault
        raise ValidationError({field: [f"not a genotype: {exc}"]}) from exc


def _fit_to_space(search: Search, field: str, genotype: Any) -> Any:
    """`genotype` as the search's space's own genotype, in the form its strategy keeps
    (`Strategy.enqueue` checks the same way); ValidationError on `field` when it does not fit."""
    from searchcore.spaces import create_space

    try:
        space = create_space(search.space, **search.space_options)
        checked = space.genotype_from_dict(genotype.to_dict())
        return space.decode(space.encode(checked))
    except (SearchcoreError, TypeError, ValueError) as exc:
        raise ValidationError({field: [f"this cell is not one of the search's space ({search.space}): {exc}"]}) \
            from exc


@transaction.atomic
def search_enqueue(*, user, search: Search, genotype: dict | str | None = None, darts: str | None = None,
                   cell_hash: str | None = None) -> dict[str, Any]:
    """Queue a cell given by hand: the search's next trial trains it, before anything its
    strategy draws (evolution learns from its result, the other strategies record it as an
    outside evaluation).

    Exactly one of `genotype` (a JSON object, as a dict or text; text that is not a JSON object
    is read as a DARTS string), `darts` (a DARTS `Genotype(...)` string) or `cell_hash` (a cell
    one of the user's teams has trained). The cell is checked against the search's space here,
    without torch, and kept in `Search.enqueued_cells`; the next control step (queued once this
    commits) hands it to the strategy, which only that step changes. Only a queued, running or
    paused search with budget left takes one; a paused one trains it when resumed.

    Returns {"cell_hash", "enqueued": cells waiting for the control step}. PermissionDenied
    unless the user's role holds searches.steer; ValidationError naming the field otherwise."""
    require_perm(user, "searches.steer", search)
    field, parsed = _genotype_from_input(user=user, genotype=genotype, darts=darts, cell_hash=cell_hash)
    locked = Search.objects.select_for_update().get(pk=search.pk)
    if locked.is_oneshot:
        raise ValidationError({"status": [ONESHOT_FIXED.format(what="cells by hand: it trains the cells its supernet "
                                                                    "ranks best")]})
    if locked.status not in ENQUEUEABLE:
        raise ValidationError({"status": [f"this search is {locked.status}; only a queued, running or paused one "
                                          "takes a cell"]})
    checked = _fit_to_space(locked, field, parsed)
    queue = list(locked.enqueued_cells or [])
    if len(queue) >= MAX_ENQUEUED:
        raise ValidationError({"status": [f"{MAX_ENQUEUED} cells already wait to be handed to the strategy; "
                                          "try again after its next step"]})
    if locked.trials_issued + len(queue) >= locked.budget:
        raise ValidationError({"status": [f"no budget left for this cell: {locked.trials_issued} of "
                                          f"{locked.budget} trials issued and {len(queue)} cells waiting; "
                                          "extend the budget first"]})
    digest = checked.canonical_hash()
    queue.append(checked.to_dict())
    locked.enqueued_cells = queue
    locked.save(update_fields=["enqueued_cells", "updated_at"])
    search_activity_record(user=user, search=locked, message=f"cell {digest[:8]} enqueued")
    dispatch.queue_advance_search(search_id=locked.pk)  # a paused search hands it over without training it
    search.enqueued_cells = queue
    return {"cell_hash": digest, "enqueued": len(queue)}


def _fork_trials(parent: Search, indices: Any) -> list[Trial]:
    """The parent's finished trials with these `indices`, in the order given; ValidationError on
    `trials` naming the first index at fault."""
    if not isinstance(indices, list) or not indices or not all(_is_int(index) for index in indices):
        raise ValidationError({"trials": ["give the indices of one or more of the search's trials, e.g. [3, 7]"]})
    if len(indices) > MAX_ENQUEUED:
        raise ValidationError({"trials": [f"at most {MAX_ENQUEUED} trials, got {len(indices)}"]})
    if len(set(indices)) != len(indices):
        raise ValidationError({"trials": ["each trial once"]})
    found = {trial.index: trial for trial in parent.trials.filter(index__in=[i for i in indices if 0 <= i < MAX_BUDGET])}
    for index in indices:
        trial = found.get(index)
        if trial is None:
            raise ValidationError({"trials": [f"{parent} has no trial {index}"]})
        if trial.status != Trial.Status.FINISHED or trial.reward is None:
            raise ValidationError({"trials": [f"trial {index} has no result to start from ({trial.status})"]})
    return [found[index] for index in indices]


def _fork_conflicts(parent: Search, options: Any) -> list[str]:
    """What in `options` (the fork's strategy options) its parent's learned state cannot take;
    options that are invalid anyway are `search_create`'s to name."""
    from searchcore.strategies import validate_strategy_options

    try:
        return validate_strategy_options(parent.strategy, options).fork_conflicts(
            validate_strategy_options(parent.strategy, parent.strategy_options))
    except (SearchcoreError, TypeError, ValueError):
        return []


@transaction.atomic
def search_fork(*, user, search: Search, trials: list[int], name: str = "", budget: int | None = None,
                parallelism: int | None = None, seed: int | None = None,
                strategy_options: dict | None = None) -> Search:
    """A new search that goes on from `search`'s strategy as it is now, starting from the cells
    of the trials whose `trials` indices are given.

    The fork has the parent's team, space, strategy, dataset and proxy config. Its strategy
    starts from the parent's state (`Strategy.load_fork`: a controller keeps its policy,
    evolution restarts its population), and its first trials are the chosen cells: finished
    trials under the same proxy config, so their results are copied, not trained again.
    Evolution's population is seeded with them; a controller records them as outside
    evaluations.

    `budget` and `parallelism` default to the parent's; `seed` to one of its own (the parent's
    plus one per fork), so the fork draws other cells than its parent; `strategy_options` go over
    the parent's but may not change what its learned state was shaped by (a controller's
    hidden_size and num_layers). Records a line in both searches' activity and returns the
    fork, queued. PermissionDenied unless the user's role holds searches.launch in the team;
    ValidationError naming the field otherwise."""
    require_perm(user, "searches.launch", search.team)
    parent = Search.objects.select_for_update().get(pk=search.pk)  # its state as the last control step left it
    if parent.is_oneshot:
        raise ValidationError({"trials": [ONESHOT_NO_FORK]})
    if not parent.strategy_state:
        raise ValidationError({"trials": ["this search has not started: its strategy has nothing to fork yet"]})
    chosen = _fork_trials(parent, trials)
    budget = parent.budget if budget is None else budget
    if _is_int(budget) and 1 <= budget < len(chosen):  # out of range: search_create says so
        raise ValidationError({"budget": [f"budget {budget} is below the {len(chosen)} trials the fork starts from"]})
    if strategy_options is not None and not isinstance(strategy_options, dict):
        raise ValidationError({"strategy_options": ["must be a JSON object"]})
    options = {**parent.strategy_options, **(strategy_options or {})}
    if conflicts := _fork_conflicts(parent, options):
        raise ValidationError({"strategy_options": conflicts})
    fork = search_create(
        user=user, team=parent.team_id, name=name or f"{parent} (fork)"[:200], space=parent.space,
        space_options=parent.space_options, strategy=parent.strategy, strategy_options=options,
        dataset=parent.dataset, proxy=parent.proxy, budget=budget,
        parallelism=parent.parallelism if parallelism is None else parallelism,
        seed=(parent.seed + parent.forks.count() + 1) % (MAX_SEED + 1) if seed is None else seed,
        keep_checkpoints=parent.keep_checkpoints,
    )
    fork.forked_from, fork.forked_state = parent, parent.strategy_state
    fork.forked_trials = [trial.index for trial in chosen]
    fork.enqueued_cells = [trial.genotype for trial in chosen]
    fork.save(update_fields=["forked_from", "forked_state", "forked_trials", "enqueued_cells", "updated_at"])
    indices = ", ".join(str(index) for index in fork.forked_trials)
    search_activity_record(user=user, search=parent, message=f"forked into search {fork.pk} from trials {indices}")
    search_activity_record(user=user, search=fork, message=f"forked from search {parent.pk} at trials {indices}")
    return fork
