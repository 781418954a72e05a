"""A trial: one cell proposed by a search's strategy, trained once under the search's proxy."""

import re
from datetime import datetime

from django.db import models

#: The tail the worker (" (attempt 1 of 3; queued again)") and the reconciler ("; queued
#: again") append to a requeued trial's error.
REQUEUE_SUFFIX = re.compile(r"(\s*\(attempt \d+ of \d+; queued again\)|; queued again)$")

#: Devices one trial (or transfer) trains on: the runner's one child process, on one GPU or the CPU.
#: Its device-seconds ("GPU-seconds") are its wall-clock seconds × this.
DEVICES_PER_RUN = 1


class Trial(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # queued for a gpu worker
        #: Asked ahead of need (CELLSEARCH_TRIALS_AHEAD) while its search's parallelism is taken:
        #: queued the moment one of its search's trials ends (trials.services.ready_trials_queue).
        READY = "ready"
        RUNNING = "running"  # a worker claimed it and beats its heartbeat
        #: A repeat of a cell that an earlier trial of the search (`reused_from`) is training:
        #: the next control step after that one ends copies its result, or queues this one.
        WAITING = "waiting"
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"

    IN_FLIGHT = (Status.PENDING, Status.READY, Status.RUNNING, Status.WAITING)
    NOT_STARTED = (Status.PENDING, Status.READY, Status.WAITING)
    #: Counted against the search's parallelism: training, or queued for a worker.
    TAKING_A_WORKER = (Status.PENDING, Status.RUNNING)
    DONE = (Status.FINISHED, Status.FAILED, Status.CANCELLED)  # told to the strategy (cancelled: as failed)

    search = models.ForeignKey("searches.Search", on_delete=models.CASCADE, related_name="trials")
    #: The strategy's trial id: 0, 1, 2... in the order the cells were sampled.
    index = models.PositiveIntegerField()
    cell = models.ForeignKey("cells.Cell", on_delete=models.PROTECT, related_name="trials")
    genotype = models.JSONField()
    cell_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    #: Set when the result was copied from an earlier trial of the same cell under the same proxy
    #: (or, while `waiting`, will be).
    reused_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reward = models.FloatField(null=True, blank=True)
    #: Its accuracy with a supernet's shared weights, for a cell a one-shot search's supernet
    #: ranked (the trial trains it standalone); null for a cell a per-trial strategy proposed.
    shared_weight_acc = models.FloatField(null=True, blank=True)
    val_acc = models.FloatField(null=True, blank=True)
    params = models.BigIntegerField(null=True, blank=True)
    mult_adds = models.BigIntegerField(null=True, blank=True)
    #: One dict per finished epoch (searchcore.train.EpochMetrics), appended as they happen.
    epochs = models.JSONField(default=list, blank=True)
    #: The process that claimed it (`host:pid`); "" until then, and again once it is queued again.
    worker = models.CharField(max_length=255, blank=True)
    #: The worker of its last attempt as the pages name it, `host/worker` (naming.py): stable
    #: across the worker's restarts, and kept when the trial is queued again.
    worker_label = models.CharField(max_length=255, blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    #: Device-seconds spent on it: wall-clock seconds × devices (one per trial) of every attempt,
    #: from its claim to its end, the attempts lost to a crash or a dead worker included.
    gpu_seconds = models.FloatField(default=0)
    #: Not a column: on a worker's in-memory row, the time up to which the current attempt's
    #: gpu_seconds are recorded (its last heartbeat); None before the first.
    charged_until: datetime | None = None
    #: What the last attempt trained on: the GPU's name as nvidia-smi gives it, or "cpu".
    device = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    #: Whether advance_search has told the strategy this trial's result.
    told = models.BooleanField(default=False)
    checkpoint = models.FileField(upload_to="checkpoints/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["search", "index"]
        constraints = [models.UniqueConstraint(fields=["search", "index"], name="unique_trial_index")]
        indexes = [
            models.Index(fields=["search", "status"]),
            models.Index(fields=["search", "-reward"]),
            models.Index(fields=["search", "told", "status"]),
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["cell_hash", "status"]),
        ]

    def __str__(self) -> str:
        return f"trial {self.index} of search {self.search_id}"

    @property
    def requeued(self) -> bool:
        """Put back in the queue after an attempt was lost (a crash, a hang, a dead worker):
        queued after one attempt or more, or training again after one."""
        if self.status == self.Status.PENDING:
            return self.attempts >= 1
        return self.status == self.Status.RUNNING and self.attempts >= 2

    @property
    def current_attempt(self) -> int:
        """The attempt it trains, or will train once a worker takes it."""
        return self.attempts + 1 if self.status == self.Status.PENDING else self.attempts

    @property
    def requeue_reason(self) -> str:
        """Why the last attempt was lost, as the worker or the reconciler recorded it, without
        the "queued again" they append."""
        return REQUEUE_SUFFIX.sub("", self.error).strip()

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
