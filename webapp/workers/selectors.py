"""Reads of workers and trial logs.

Workers are shared infrastructure: every signed-in user sees every worker, but the trial or
transfer a worker is on is named only to members of its team (`WorkerRow.trial` is None for
another team's: the page says "another team's trial")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from webapp.searches.models import Search
from webapp.trials.models import Trial
from webapp.workers.models import TrialLog, Worker

BUSY, IDLE, LOST, STOPPED = "busy", "idle", "lost", "stopped"
WORKER_STATUSES = (BUSY, IDLE, LOST, STOPPED)


def worker_status(*, worker: Worker, now: datetime | None = None) -> str:
    """stopped: it shut down warmly; lost: no heartbeat for CELLSEARCH_HEARTBEAT_TIMEOUT; busy:
    it is on a trial or a transfer; idle otherwise."""
    now = now or timezone.now()
    if worker.stopped_at is not None:
        return STOPPED
    if (now - worker.heartbeat_at).total_seconds() > settings.CELLSEARCH_HEARTBEAT_TIMEOUT:
        return LOST
    if any(task is not None for task in (worker.current_trial_id, worker.current_transfer_id,
                                         worker.current_oneshot_id)):
        return BUSY
    return IDLE


def queue_health_for_user(*, user) -> dict[str, int]:
    """The searches list's strip: how many workers are busy, idle, lost and stopped now (shared
    by every team), and how many of the user's teams' trials wait in the gpu queue."""
    now = timezone.now()
    counts = dict.fromkeys(WORKER_STATUSES, 0)
    for worker in Worker.objects.only("stopped_at", "heartbeat_at", "current_trial_id", "current_transfer_id",
                                      "current_oneshot_id"):
        counts[worker_status(worker=worker, now=now)] += 1
    pending = Trial.objects.filter(search__team__members=user, status=Trial.Status.PENDING,
                                   search__status__in=[*Search.ACTIVE, Search.Status.PAUSED]).count()
    return {**counts, "pending": pending}


def worker_list() -> QuerySet[Worker]:
    return (Worker.objects.select_related("current_trial__search", "current_transfer", "current_oneshot__search")
            .order_by("host", "name"))


@dataclass(frozen=True)
class WorkerRow:
    worker: Worker
    status: str
    heartbeat_age: float  # seconds
    trial: object | None  # the current trial, when it is one of the user's teams'
    transfer: object | None  # likewise the current transfer
    oneshot: object | None  # likewise the one-shot search's supernet run it trains
    other_team: bool  # on a trial, a transfer or a supernet of a team the user is not in


def worker_rows_for_user(*, user, workers=None) -> list[WorkerRow]:
    """The workers (all of them, or `workers`, e.g. a page of them) with their status, and their
    current trial or transfer only where it is the user's teams'."""
    now = timezone.now()
    team_ids = set(user.teams.values_list("pk", flat=True))
    rows = []
    for worker in worker_list() if workers is None else workers:
        trial, transfer, oneshot = worker.current_trial, worker.current_transfer, worker.current_oneshot
        visible_trial = trial if trial is not None and trial.search.team_id in team_ids else None
        visible_transfer = transfer if transfer is not None and transfer.team_id in team_ids else None
        visible_oneshot = oneshot if oneshot is not None and oneshot.search.team_id in team_ids else None
        rows.append(WorkerRow(
            worker=worker, status=worker_status(worker=worker, now=now),
            heartbeat_age=max(0.0, (now - worker.heartbeat_at).total_seconds()),
            trial=visible_trial, transfer=visible_transfer, oneshot=visible_oneshot,
            other_team=(trial, transfer, oneshot) != (visible_trial, visible_transfer, visible_oneshot),
        ))
    return rows


def trial_logs_for_trial(*, trial) -> QuerySet[TrialLog]:
    """A trial's logs, one per attempt, oldest first (the caller has checked the user may see it)."""
    return TrialLog.objects.filter(trial=trial).order_by("attempt")
