"""How a gpu worker drives any ResumableRun (a transfer, a one-shot search's supernet), and how
its user and the reconciler steer one.

A run is claimed under its row lock (pending, or running with a heartbeat older than
CELLSEARCH_HEARTBEAT_TIMEOUT: its worker died); each claim counts an attempt, and every later
write checks the attempt (`ours`), so a worker presumed dead cannot overwrite a newer one.
Every epoch's `last.pt` goes to Django storage, and a new attempt, on any worker, downloads it
and trains on from there. How an attempt ends is the runner's policy (the trials' one):

- stopped after an epoch because a pause was asked: paused (resume queues it again);
- stopped because it is no longer ours (cancelled, taken over): nothing more is written;
- a lost process (crashed, killed, hung): queued again, up to CELLSEARCH_MAX_ATTEMPTS attempts;
- a checkpoint that cannot be stored (a full disk): paused at the last checkpoint stored, with
  the reason; resuming carries on from there.

Cost, as a trial's: an attempt's device-seconds (wall-clock × devices) are added to
`gpu_seconds` at each heartbeat (since the last one, or the claim) and at its end (the rest), so
a dead worker's attempt has cost up to its last heartbeat.

Torch-free: the runner's parent side needs none.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from webapp import dispatch
from webapp.runs.models import ResumableRun
from webapp.runs.services.lifecycle import Queue
from webapp.storage import StorageWriteError, store_file
from webapp.trials.services import gpu_charge, worker_name

logger = logging.getLogger(__name__)

RunT = TypeVar("RunT", bound=ResumableRun)


def run_claim(model: type[RunT], *, pk: int) -> RunT | None:
    """Take the run for this process, or None when it is not ours to train (ended, paused, or
    running with a fresh heartbeat elsewhere). Its epochs are cut back to its last stored
    checkpoint's, where this attempt resumes."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        run = model._default_manager.select_for_update().filter(pk=pk).first()
        if run is None:
            return None
        stale = run.status == run.Status.RUNNING and run.heartbeat_at is not None and run.heartbeat_at < stale_before
        if run.status != run.Status.PENDING and not stale:
            return None
        run.status, run.worker, run.heartbeat_at = run.Status.RUNNING, worker_name(), now
        run.started_at = run.started_at or now
        run.attempt_started_at = now
        run.attempts += 1
        kept = run.checkpoint_epoch if run.last_checkpoint else 0
        run.epochs = [e for e in run.epochs if e.get("epoch", 0) <= kept]
        run.save(update_fields=["status", "worker", "started_at", "heartbeat_at", "attempts", "epochs",
                                "attempt_started_at", "updated_at"])
    return run


def ours(run: ResumableRun) -> QuerySet:
    """The run's row while this attempt still owns it."""
    return type(run)._default_manager.filter(pk=run.pk, status=run.Status.RUNNING, attempts=run.attempts)


def spent(run: ResumableRun, now=None) -> dict:
    """Update fields adding this attempt's device-seconds not yet added (since its last beat, or its claim)."""
    return gpu_charge(run, start=run.attempt_started_at or run.started_at, now=now)


def attempt_spent(run: ResumableRun) -> None:
    """Add the rest of an attempt's cost when it ended without a write of its own (cancelled while
    it ran); nothing when a newer attempt took it over (this one counted up to its last beat)."""
    type(run)._default_manager.filter(pk=run.pk, attempts=run.attempts).exclude(status=run.Status.RUNNING) \
        .update(**spent(run))


def download(file, path: str) -> bool:
    """Copy a stored file to `path`; False when there is none."""
    if not file.name or not file.storage.exists(file.name):
        return False
    with file.storage.open(file.name, "rb") as source, open(path, "wb") as target:
        shutil.copyfileobj(source, target)
    return True


def upload_all(run: ResumableRun, files: dict[str, str]) -> dict[str, str]:
    """Upload {field: local path} under the run's names (`ResumableRun.storage_name`); returns
    {field: stored name}. When the previous file still holds a name, storage gives the new one a
    suffix; the caller points the row at it and deletes the old file after the commit
    (`swap_files`), so a crash never leaves the row without a whole file. When one upload fails,
    the ones already stored are removed and StorageWriteError propagates."""
    uploads: dict[str, str] = {}
    try:
        for field, path in files.items():
            uploads[field] = store_file(name=run.storage_name(os.path.basename(path)), path=path)
    except StorageWriteError:
        drop(uploads.values())
        raise
    return uploads


def swap_files(row: ResumableRun, new: dict[str, str]) -> dict[str, Any]:
    """Update fields for the uploaded files; the files they replace are deleted after the commit."""
    old = [getattr(row, field).name for field in new if getattr(row, field).name]
    old = [name for name in old if name not in new.values()]
    if old:
        transaction.on_commit(lambda: drop(old))
    return dict(new)


def drop(names) -> None:
    for name in names:
        default_storage.delete(name)


def file_stamp(path: str) -> tuple[int, int] | None:
    """When and how big the file was last written; None when there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def heartbeat(run: ResumableRun) -> Callable[[Any], bool]:
    """The runner's on_beat for this attempt: at most every CELLSEARCH_HEARTBEAT_SECONDS, record
    the heartbeat and the cost so far; False once the run is no longer ours (stop)."""
    last_beat = [timezone.now()]

    def on_beat(_progress) -> bool:
        now = timezone.now()
        if (now - last_beat[0]).total_seconds() < settings.CELLSEARCH_HEARTBEAT_SECONDS:
            return True
        last_beat[0] = now
        try:
            still_ours = bool(ours(run).update(heartbeat_at=now, **spent(run, now)))
        except DatabaseError:  # a busy database: keep training, the next beat tries again
            logger.warning("%s: could not beat", run, exc_info=True)
            return True
        if still_ours:
            run.charged_until = now
        return still_ours

    return on_beat


class StoredEpochs:
    """Records a run's epochs as they end, each with the checkpoints that hold it.

    `record(epoch, files)` uploads {field: local path}, then, under the row lock, points the
    row at them and stores the epochs with the heartbeat and the cost; it returns False to stop
    after this epoch (a pause was asked, the run is no longer ours, or a file could not be
    stored: `not_stored` says which and why)."""

    def __init__(self, run: ResumableRun) -> None:
        self.run = run
        self.epochs: list[dict] = list(run.epochs)
        self.not_stored = ""

    def record(self, record: dict, files: dict[str, str], **fields: Any) -> bool:
        run = self.run
        self.epochs[:] = [e for e in self.epochs if e.get("epoch", 0) < record["epoch"]] + [record]
        now = timezone.now()
        if not ours(run).exists():
            return False
        try:
            uploads = upload_all(run, files)
        except StorageWriteError as exc:  # a full disk: stop here, keeping the last stored checkpoint
            self.not_stored = f"epoch {record['epoch']}'s checkpoint: {exc}"
            return False
        with transaction.atomic():
            row = ours(run).select_for_update().first()
            if row is None:
                transaction.on_commit(lambda: drop(uploads.values()))
                return False
            changes = swap_files(row, uploads)
            if "last_checkpoint" in uploads:
                changes["checkpoint_epoch"] = record["epoch"]
            ours(run).update(epochs=self.epochs, heartbeat_at=now, **spent(run, now), **changes, **fields)
            run.charged_until = now
            return not row.pause_requested


def run_failed(run: ResumableRun, *, error: str, epochs: list[dict]) -> bool:
    """The attempt failed for good (the job's own failure, or settings it refuses); whether it was still ours."""
    return bool(ours(run).update(status=run.Status.FAILED, error=error, finished_at=timezone.now(), epochs=epochs,
                                 **spent(run)))


@transaction.atomic
def run_stopped(run: ResumableRun) -> None:
    """It stopped after an epoch: paused when a pause was asked; otherwise it is no longer ours
    (cancelled, or taken over) and nothing is written."""
    if ours(run).filter(pause_requested=True).update(
            status=run.Status.PAUSED, pause_requested=False, worker="", heartbeat_at=timezone.now(), **spent(run)):
        logger.info("%s: paused", run)
    else:
        logger.info("%s: stopped (cancelled, or another worker took it)", run)
        attempt_spent(run)


@transaction.atomic
def run_paused_for_storage(run: ResumableRun, *, reason: str) -> None:
    """A file could not be stored (a full disk): the run pauses at its last stored checkpoint
    with the reason, and resumes from there once there is room. Retrying at once would only
    fill the disk again."""
    if ours(run).update(status=run.Status.PAUSED, pause_requested=False, worker="", heartbeat_at=timezone.now(),
                        **spent(run), error=f"paused: could not store {reason}; free space and resume"):
        logger.error("%s: paused, could not store %s", run, reason)


@transaction.atomic
def run_attempt_lost(run: ResumableRun, *, reason: str, epochs: list[dict], queue: Queue) -> bool:
    """The training process crashed or hung: queued again (it resumes from its last checkpoint
    on whichever worker takes it) until CELLSEARCH_MAX_ATTEMPTS attempts have failed; whether it
    failed for good."""
    attempts, limit = run.attempts, settings.CELLSEARCH_MAX_ATTEMPTS
    now = timezone.now()
    if attempts >= limit:
        return bool(ours(run).update(status=run.Status.FAILED, finished_at=now, epochs=epochs,
                                     error=f"{reason} (attempt {attempts} of {limit})", **spent(run)))
    task_id = dispatch.new_task_id()
    if ours(run).update(status=run.Status.PENDING, worker="", task_id=task_id, heartbeat_at=now, epochs=epochs,
                        error=f"{reason} (attempt {attempts} of {limit}; queued again)", **spent(run)):
        queue(run.pk, task_id)
    return False


