"""The reconciler: repairs what a dead worker or a lost message left behind.

The database is the source of truth: a trial's status and heartbeat say whether a worker still
trains it, and a search's trials say whether it waits for a control step that never came.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from webapp import dispatch
from webapp.searches.models import Search
from webapp.searches.services.oneshot import oneshot_reconcile
from webapp.trials.models import Trial

logger = logging.getLogger(__name__)


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
      with room for more trials in flight, gets a control step;
    - one-shot searches' supernet runs, as transfers are (webapp.runs.services.reconcile).
    """
    now = timezone.now()
    requeued, failed = _recover_dead_workers_trials(now)
    requeued += _requeue_lost_messages(now)
    nudged = _nudge_stalled_searches()
    supernets = oneshot_reconcile()
    return {"requeued": requeued, "failed": failed, "nudged": nudged,
            "supernets_requeued": supernets["requeued"], "supernets_failed": supernets["failed"]}


@transaction.atomic
def _recover_dead_workers_trials(now) -> tuple[list[int], list[int]]:
    """Running trials whose worker stopped beating: queued again, or failed once they have
    taken CELLSEARCH_MAX_ATTEMPTS workers down; closed in an ended search. Returns the ids
    queued again and the ids failed."""
    max_attempts = settings.CELLSEARCH_MAX_ATTEMPTS
    stale_before = now - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    stale = Trial.objects.filter(status=Trial.Status.RUNNING).filter(
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, started_at__lt=stale_before)
        | Q(heartbeat_at__isnull=True, started_at__isnull=True))
    sends: list[tuple[int, str]] = []
    failed: list[int] = []
    for trial_id, heartbeat_at, attempts, search_status, error in stale.values_list(
            "pk", "heartbeat_at", "attempts", "search__status", "error"):
        same = Trial.objects.filter(pk=trial_id, status=Trial.Status.RUNNING, heartbeat_at=heartbeat_at)
        if search_status in Search.ENDED:  # nobody will claim it again: close it
            same.update(status=Trial.Status.CANCELLED, finished_at=now,
                        error=f"its worker stopped beating after the search was {search_status}")
            continue
        lost = (f"its worker stopped beating in attempt {attempts} of {max_attempts} (the worker process "
                "died, or lost its database)")
        earlier = f"; before that: {error}" if error else ""
        if attempts >= max_attempts:  # it takes its worker down with it (killed for memory, say)
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
    return [trial_id for trial_id, _ in sends], failed


def _requeue_lost_messages(now) -> list[int]:
    """Pending trials queued longer than CELLSEARCH_PENDING_TIMEOUT ago, queued again when the
    gpu queue holds fewer messages than them; returns their ids."""
    lost_before = now - timedelta(seconds=settings.CELLSEARCH_PENDING_TIMEOUT)
    waiting = list(Trial.objects.filter(status=Trial.Status.PENDING,
                                        search__status__in=[*Search.ACTIVE, Search.Status.PAUSED]).filter(
        Q(heartbeat_at__lt=lost_before) | Q(heartbeat_at__isnull=True, created_at__lt=lost_before))
        .values_list("pk", flat=True))
    if not waiting:
        return []
    size = dispatch.gpu_queue_size()
    if size is not None and size >= len(waiting):
        return []
    with transaction.atomic():
        sends = []
        for trial_id in waiting:
            task_id = dispatch.new_task_id()
            if Trial.objects.filter(pk=trial_id, status=Trial.Status.PENDING).update(
                    task_id=task_id, heartbeat_at=now):
                sends.append((trial_id, task_id))
        dispatch.queue_train_trials(trials=sends)
    logger.warning("queued %d waiting trials again (their messages look lost)", len(sends))
    return [trial_id for trial_id, _ in sends]


def _nudge_stalled_searches() -> list[int]:
    """Queue a control step for each search with results not told, or room for more trials in
    flight; returns their ids."""
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
    return nudged
