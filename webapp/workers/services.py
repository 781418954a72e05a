"""Writes for workers: a worker registers when it starts, beats while it runs, says which trial,
transfer or one-shot supernet it is on, and saves what a trial's training wrote (signals.py calls these)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from webapp.searches.models import OneShotRun
from webapp.transfers.models import Transfer
from webapp.trials.models import Trial
from webapp.workers.models import TRIAL_LOG_MAX_CHARS, TrialLog, Worker

#: A worker's fields naming its current task, cleared.
NO_TASK = {"current_trial": None, "current_transfer": None, "current_oneshot": None}


@transaction.atomic
def worker_register(*, name: str, host: str, queues: str = "", gpu_name: str = "",
                    gpu_memory_mb: int | None = None) -> Worker:
    """A worker (re)starting: its facts, a fresh heartbeat, and no task in hand."""
    now = timezone.now()
    worker, _ = Worker.objects.update_or_create(name=name, defaults={
        "host": host[:200], "queues": queues[:200], "gpu_name": gpu_name[:200], "gpu_memory_mb": gpu_memory_mb,
        "started_at": now, "heartbeat_at": now, "stopped_at": None, **NO_TASK,
    })
    return worker


@transaction.atomic
def worker_beat(*, name: str) -> bool:
    """The worker is alive; False when it has no row (never registered)."""
    return bool(Worker.objects.filter(name=name).update(heartbeat_at=timezone.now(), stopped_at=None))


@transaction.atomic
def worker_task_started(*, name: str, host: str = "", trial_id: int | None = None,
                        transfer_id: int | None = None, oneshot_id: int | None = None) -> None:
    """The worker took a trial's, a transfer's or a one-shot supernet's message (one that no
    longer exists is not named)."""
    current = {
        "current_trial_id": trial_id if trial_id is not None and Trial.objects.filter(pk=trial_id).exists() else None,
        "current_transfer_id": transfer_id if transfer_id is not None
        and Transfer.objects.filter(pk=transfer_id).exists() else None,
        "current_oneshot_id": oneshot_id if oneshot_id is not None
        and OneShotRun.objects.filter(pk=oneshot_id).exists() else None,
    }
    now = timezone.now()
    updated = Worker.objects.filter(name=name).update(**current, heartbeat_at=now, stopped_at=None)
    if not updated:
        Worker.objects.create(name=name, host=host[:200], **current)


@transaction.atomic
def worker_task_ended(*, name: str, trial_done: bool = False) -> None:
    """The worker's task ended; `trial_done` counts a trial it trained to an end."""
    Worker.objects.filter(name=name).update(
        **NO_TASK, heartbeat_at=timezone.now(),
        trials_done=F("trials_done") + (1 if trial_done else 0),
    )


@transaction.atomic
def worker_stop(*, name: str) -> None:
    """A warm shutdown: the worker says goodbye rather than going silent."""
    Worker.objects.filter(name=name).update(stopped_at=timezone.now(), **NO_TASK)


@transaction.atomic
def trial_log_save(*, trial_id: int, attempt: int, worker: str, text: str) -> TrialLog | None:
    """Replace the log of a trial's attempt with `text`, keeping its last TRIAL_LOG_MAX_CHARS
    characters; None when the trial no longer exists."""
    if not Trial.objects.filter(pk=trial_id).exists():
        return None
    truncated = len(text) > TRIAL_LOG_MAX_CHARS
    if truncated:
        text = text[-TRIAL_LOG_MAX_CHARS:]
        text = text[text.find("\n") + 1:] if "\n" in text[:1000] else text  # start on a whole line
    log, _ = TrialLog.objects.update_or_create(trial_id=trial_id, attempt=attempt,
                                               defaults={"worker": worker[:200], "text": text,
                                                         "truncated": truncated})
    return log
