"""The Celery workers that train (one row per worker node) and what each trial's training wrote."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from webapp.trials.naming import worker_label

#: A trial log keeps its last this many characters (the end holds the traceback).
TRIAL_LOG_MAX_CHARS = 64 * 1024


class Worker(models.Model):
    """A Celery worker node, registered when it starts and beating while it runs. Its status
    (busy, idle, lost, stopped) is derived from the heartbeat by the selectors."""

    name = models.CharField(max_length=200, unique=True, help_text="The Celery node name.")
    host = models.CharField(max_length=200, blank=True)
    queues = models.CharField(max_length=200, blank=True)
    gpu_name = models.CharField(max_length=200, blank=True)
    gpu_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    current_trial = models.ForeignKey("trials.Trial", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    current_transfer = models.ForeignKey("transfers.Transfer", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")
    #: The one-shot search's supernet it trains (searches.OneShotRun), if that is its task.
    current_oneshot = models.ForeignKey("searches.OneShotRun", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    trials_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["host", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """`host/worker`, as trials name the worker that trains them: the same across restarts."""
        return worker_label(host=self.host, node=self.name)


class TrialLog(models.Model):
    """The lines one attempt of a trial wrote on its worker: the training's own output and the
    worker's log records while it trained it, ending with the traceback when it failed."""

    trial = models.ForeignKey("trials.Trial", on_delete=models.CASCADE, related_name="logs")
    attempt = models.PositiveIntegerField()
    worker = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    truncated = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trial", "attempt"]
        constraints = [models.UniqueConstraint(fields=["trial", "attempt"], name="workers_triallog_one_per_attempt")]

    def __str__(self) -> str:
        return f"trial {self.trial_id}, attempt {self.attempt}"
