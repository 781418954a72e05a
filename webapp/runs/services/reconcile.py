"""The reconciler of any ResumableRun: requeue one whose worker went silent (it resumes from its
last checkpoint), resend one whose message looks lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webapp import dispatch
from webapp.runs.models import ResumableRun
from webapp.runs.services.lifecycle import Queue

logger = logging.getLogger(__name__)


def runs_reconcile(model: type[ResumableRun], *, queue: Queue) -> dict[str, list[int]]:
    """Repair what dead workers and lost messages left behind; returns what it did.

    - a running run whose heartbeat is older than CELLSEARCH_HEARTBEAT_TIMEOUT lost its worker:
      paused if a pause was asked, failed once CELLSEARCH_MAX_ATTEMPTS attempts ended so, else
      queued again (the next worker resumes from its last checkpoint);
    - a pending run queued longer than CELLSEARCH_PENDING_TIMEOUT ago is sent again when the
      gpu queue is empty or cannot say (the claim is atomic: a duplicate is harmless).
    """
    now = timezone.now()
    requeued, failed, paused = _recover_silent(model, now, queue)
    requeued += _resend_lost_messages(model, now, queue)
    return {"requeued": requeued, "failed": failed, "paused": paused}


@transaction.atomic
def _recover_silent(model: type[ResumableRun], now, queue: Queue) -> tuple[list[int], list[int], list[int]]:
    limit = settings.CELLSEARCH_MAX_ATTEMPTS
    stale_before = now - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    stale = model._default_manager.filter(status=model.Status.RUNNING).filter(
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True))
    requeued: list[int] = []
    failed: list[int] = []
    paused: list[int] = []
    for pk, heartbeat_at, attempts, pause_requested, error in stale.values_list(
            "pk", "heartbeat_at", "attempts", "pause_requested", "error"):
        same = model._default_manager.filter(pk=pk, status=model.Status.RUNNING, heartbeat_at=heartbeat_at)
        lost = f"its worker stopped beating in attempt {attempts} of {limit} (the worker process died, or lost " \
               "its database)"
        if pause_requested:
            if same.update(status=model.Status.PAUSED, pause_requested=False, worker="", heartbeat_at=now,
                           error=f"{lost}; paused, as asked"):
                paused.append(pk)
        elif attempts >= limit:
            earlier = f"; before that: {error}" if error else ""
            if same.update(status=model.Status.FAILED, finished_at=now, error=f"{lost}{earlier}"):
                logger.warning("%s %s: its worker died %s times; failed", model.__name__, pk, attempts)
                failed.append(pk)
        else:
            task_id = dispatch.new_task_id()
            if same.update(status=model.Status.PENDING, worker="", task_id=task_id, heartbeat_at=now,
                           error=f"{lost}; queued again"):
                logger.warning("%s %s: its worker stopped beating; queued again", model.__name__, pk)
                queue(pk, task_id)
                requeued.append(pk)
    return requeued, failed, paused


def _resend_lost_messages(model: type[ResumableRun], now, queue: Queue) -> list[int]:
    lost_before = now - timedelta(seconds=settings.CELLSEARCH_PENDING_TIMEOUT)
    waiting = list(model._default_manager.filter(status=model.Status.PENDING)
                   .filter(Q(heartbeat_at__lt=lost_before) | Q(heartbeat_at__isnull=True, created_at__lt=lost_before))
                   .values_list("pk", flat=True))
    if not waiting:
        return []
    if dispatch.gpu_queue_size():  # messages still wait: this one may be among them
        return []
    sent = []
    with transaction.atomic():
        for pk in waiting:
            task_id = dispatch.new_task_id()
            if model._default_manager.filter(pk=pk, status=model.Status.PENDING).update(task_id=task_id, heartbeat_at=now):
                queue(pk, task_id)
                sent.append(pk)
    logger.warning("queued %d pending %s rows again (their messages look lost)", len(sent), model.__name__)
    return sent


