"""What every long resumable job on a gpu worker records (a transfer, a one-shot search's
supernet): its state, its attempts, its heartbeat and cost, its epochs and its last checkpoint.

Abstract: each concept's app has its own table (transfers.Transfer, searches.OneShotRun) and
declares its own checkpoint fields; webapp.runs.services drives any of them the same way.
"""

from datetime import datetime
from typing import Any

from django.db import models


class ResumableRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # queued for a gpu worker (again, after a resume or a lost process)
        RUNNING = "running"  # a worker claimed it and beats its heartbeat
        PAUSED = "paused"  # stopped after an epoch; its last checkpoint is kept, resume goes on from it
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"

    IN_FLIGHT = (Status.PENDING, Status.RUNNING)
    ENDED = (Status.FINISHED, Status.FAILED, Status.CANCELLED)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    #: A pause asked while running: the worker stops after the current epoch and marks it paused.
    pause_requested = models.BooleanField(default=False)
    #: One dict per finished epoch, as they happen, across attempts.
    epochs = models.JSONField(default=list, blank=True)
    #: Device-seconds spent on it: wall-clock seconds × devices (one per run) of every attempt,
    #: from its claim to its end (paused, lost, failed or finished), a dead worker's attempt included.
    gpu_seconds = models.FloatField(default=0)
    #: Not a column: on a worker's in-memory row, the time up to which the current attempt's
    #: gpu_seconds are recorded (its last heartbeat); None before the first.
    charged_until: datetime | None = None
    #: When the current attempt was claimed (started_at is the first attempt's).
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    #: The epoch of the last checkpoint stored (the subclass's `last_checkpoint`), where a new
    #: attempt resumes.
    checkpoint_epoch = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    #: The accelerator the training reported (e.g. "NVIDIA H100 80GB HBM3"), "" when none was.
    device = models.CharField(max_length=255, blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    #: Subclasses declare it: a FileField holding the last epoch's checkpoint (`last.pt`).
    last_checkpoint: Any
    #: Subclasses: the storage folder of a run's files ("transfers/transfer_<pk>/...").
    storage_prefix = "runs"

    class Meta:
        abstract = True

    @property
    def live(self) -> bool:
        """Whether its page should keep polling: queued, training, or pausing."""
        return self.status in self.IN_FLIGHT

    def storage_name(self, filename: str) -> str:
        return f"{self.storage_prefix}/{type(self).__name__.lower()}_{self.pk}/{filename}"
