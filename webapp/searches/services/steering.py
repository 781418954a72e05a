"""Steering a search while it runs: change its parallelism and budget, cancel one of its trials.

Every change is checked against the team's permission table (searches.steer), validated
(ValidationError `{field: [reason]}`, a 400 from the API, a form error on the page), and recorded
in the search's steering log in the same transaction: one entry per change ("parallelism 2 → 4",
"budget 10 → 20", "trial 3 cancelled") with its actor. The log is Django's admin log
(django.contrib.admin's LogEntry, on the search): the review activity (webapp.reviews) is about
cells, and each of its rows needs one.

Imported by the web process: no torch.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from webapp import dispatch
from webapp.searches.models import Search
from webapp.searches.services.lifecycle import MAX_BUDGET, MAX_PARALLELISM
from webapp.teams.permissions import require_perm
from webapp.trials.models import Trial

#: Searches whose settings may change: those not ended, and a finished one whose budget is
#: extended (see `search_steer`).
STEERABLE = (Search.Status.QUEUED, Search.Status.RUNNING, Search.Status.PAUSED, Search.Status.FINISHED)


def _log(*, user, search: Search, message: str) -> LogEntry:
    return LogEntry.objects.create(
        user_id=user.pk, content_type_id=ContentType.objects.get_for_model(Search).pk, object_id=str(search.pk),
        object_repr=str(search)[:200], action_flag=CHANGE, change_message=message)


def search_steering_log(*, search: Search) -> QuerySet[LogEntry]:
    """The search's steering log, newest first (`user` and `change_message` for each line)."""
    meta = Search._meta
    return (LogEntry.objects.filter(content_type__app_label=meta.app_label, content_type__model=meta.model_name,
                                    object_id=str(search.pk))
            .select_related("user").order_by("-action_time", "-id"))


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
    if not _is_int(new_budget) or not 1 <= new_budget <= MAX_BUDGET:
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
        _log(user=user, search=locked, message=message)
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
    _log(user=user, search=search, message=f"trial {locked.index} cancelled")
    if search.status not in Search.ENDED:
        dispatch.queue_advance_search(search_id=search.pk)  # tell it, and fill its slot in flight
    for field in ("status", "finished_at", "error"):
        setattr(trial, field, getattr(locked, field))
    return trial
