"""A trial as the APIs list it: the searches API pages through a search's trials, the trials API
shows one in full, and both start from these fields."""

from __future__ import annotations

from rest_framework import serializers

from webapp.trials.models import Trial

TRIAL_SUMMARY_FIELDS = ("id", "index", "status", "reward", "val_acc", "shared_weight_acc", "params", "mult_adds",
                        "cell_hash", "cell", "reused_from", "worker", "worker_label", "requeued", "device", "attempts",
                        "gpu_seconds", "epochs_done", "error", "created_at", "started_at", "finished_at", "seconds")


class TrialSummarySerializer(serializers.ModelSerializer):
    """The summary columns; subclasses name the model and fields in their Meta."""

    epochs_done = serializers.SerializerMethodField(help_text="Epochs trained so far.")
    shared_weight_acc = serializers.FloatField(read_only=True, allow_null=True, help_text=(
        "Its validation accuracy with a one-shot search's shared supernet weights, which ranked it among the cells "
        "this trial trains standalone; null for a cell a per-trial strategy proposed."))
    seconds = serializers.FloatField(read_only=True, allow_null=True, help_text="Training time, once finished.")
    gpu_seconds = serializers.FloatField(read_only=True, help_text=(
        "Device-seconds spent: wall-clock seconds x devices (one) of every attempt, lost ones included."))
    device = serializers.CharField(read_only=True, help_text="What its last attempt trained on: a GPU's name, or cpu.")
    worker = serializers.CharField(read_only=True, help_text="The process holding its claim, host:pid; \"\" when unclaimed.")
    worker_label = serializers.CharField(read_only=True, help_text=(
        "host/worker: the worker of its last attempt, named as the pages name it, the same across restarts."))
    requeued = serializers.BooleanField(read_only=True, help_text=(
        "Queued again after an attempt was lost (a crash, a hang, a dead worker); error says why."))

    def get_epochs_done(self, trial: Trial) -> int:
        return len(trial.epochs)
