"""A ResumableRun as its user steers it: pause, resume and cancel. Imported by the web process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp import dispatch
from webapp.runs.models import ResumableRun

RunT = TypeVar("RunT", bound=ResumableRun)
#: Sends a run's message to the gpu queue after the commit: (run id, task id).
Queue = Callable[[int, str], None]


def _locked(run: RunT) -> RunT:
    return type(run)._default_manager.select_for_update().get(pk=run.pk)


def _refresh_caller(run: RunT, locked: RunT) -> RunT:
    for field in ("status", "pause_requested", "task_id", "finished_at", "error", "updated_at"):
        setattr(run, field, getattr(locked, field))
    return run


@transaction.atomic
def run_pause(run: RunT, *, noun: str) -> RunT:
    """A queued run is paused at once (its message is dropped); a running one stops after its
    current epoch, keeping that epoch's checkpoint, and its worker marks it paused."""
    locked = _locked(run)
    if locked.status == locked.Status.PENDING:
        dispatch.queue_revoke_tasks(task_ids=[locked.task_id] if locked.task_id else [], terminate=False)
        locked.status = locked.Status.PAUSED
        locked.save(update_fields=["status", "updated_at"])
    elif locked.status == locked.Status.RUNNING and not locked.pause_requested:
        locked.pause_requested = True
        locked.save(update_fields=["pause_requested", "updated_at"])
    else:
        raise ValidationError({"status": [f"only a queued or running {noun} can be paused; this one is "
                                          f"{'pausing' if locked.pause_requested else locked.status}"]})
    return _refresh_caller(run, locked)


@transaction.atomic
def run_resume(run: RunT, *, noun: str, queue: Queue) -> RunT:
    """Carry on a paused run from its last checkpoint (queued again once this commits), or take
    back a pause its worker has not acted on yet."""
    locked = _locked(run)
    if locked.status == locked.Status.RUNNING and locked.pause_requested:
        locked.pause_requested = False
        locked.save(update_fields=["pause_requested", "updated_at"])
    elif locked.status == locked.Status.PAUSED:
        locked.status, locked.pause_requested = locked.Status.PENDING, False
        locked.task_id, locked.heartbeat_at, locked.worker = dispatch.new_task_id(), timezone.now(), ""
        locked.save(update_fields=["status", "pause_requested", "task_id", "heartbeat_at", "worker", "updated_at"])
        queue(locked.pk, locked.task_id)
    else:
        raise ValidationError({"status": [f"only a paused {noun} can be resumed; this one is {locked.status}"]})
    return _refresh_caller(run, locked)


@transaction.atomic
def run_cancel(run: RunT, *, noun: str) -> RunT:
    """End the run for good: a running training is stopped (its task terminated once this
    commits, and its worker's next beat finds it no longer its own). Its checkpoints stay."""
    locked = _locked(run)
    if locked.status in locked.ENDED:
        raise ValidationError({"status": [f"this {noun} has already ended ({locked.status})"]})
    if locked.task_id:
        dispatch.queue_revoke_tasks(task_ids=[locked.task_id], terminate=locked.status == locked.Status.RUNNING)
    locked.status, locked.pause_requested, locked.finished_at = locked.Status.CANCELLED, False, timezone.now()
    locked.save(update_fields=["status", "pause_requested", "finished_at", "updated_at"])
    return _refresh_caller(run, locked)
