"""A transfer: one found cell trained at full size (N@F, a long schedule) on a dataset, from
scratch, on a gpu worker; its checkpoints, exports and model card are kept for download."""

from django.conf import settings
from django.db import models

from webapp.runs.models import ResumableRun


class Transfer(ResumableRun):
    """Its state, attempts, heartbeat, cost and epochs (searchcore.results.EpochMetrics) are a
    ResumableRun's."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="transfers")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transfers")
    name = models.CharField(max_length=200, blank=True)
    cell = models.ForeignKey("cells.Cell", on_delete=models.PROTECT, related_name="transfers")
    #: The genotype trained, as the source trial proposed it (searchcore's versioned JSON).
    genotype = models.JSONField()
    cell_hash = models.CharField(max_length=64)
    #: Where the cell came from: a trial of a search (kept when either is deleted: the card names them).
    source_trial = models.ForeignKey("trials.Trial", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="transfers")
    source_search = models.ForeignKey("searches.Search", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="transfers")
    #: The review decision it was launched from: the reviews Activity row that approved the cell
    #: for transfer training (a string reference: transfers never imports reviews, whose pages
    #: read `activity.transfers`). Null for a transfer launched without one.
    decision = models.ForeignKey("reviews.Activity", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="transfers")
    #: The preset the settings started from ("" for none); `config` holds every setting.
    preset = models.CharField(max_length=50, blank=True)
    dataset = models.CharField(max_length=50, default="digits")
    #: searchcore.transfer.TransferConfig.to_dict() less the dataset (its own column) and the data root
    #: (the server's CELLSEARCH_DATA_ROOT/<dataset>, added on the worker).
    config = models.JSONField(default=dict)
    best_val_acc = models.FloatField(null=True, blank=True)
    final_val_acc = models.FloatField(null=True, blank=True)
    test_acc = models.FloatField(null=True, blank=True)
    params = models.BigIntegerField(null=True, blank=True)
    mult_adds = models.BigIntegerField(null=True, blank=True)
    #: Training time the runner reported (seconds), once finished.
    train_seconds = models.FloatField(null=True, blank=True)
    #: Per export format, its check: {"file", "max_abs_diff", "ok", "batch"} (TransferResult.exports).
    exports = models.JSONField(default=dict, blank=True)
    #: The last and best checkpoints as the worker uploads them after each epoch (state dicts,
    #: torch.load(weights_only=True)); `checkpoint_epoch` is the last one's epoch.
    last_checkpoint = models.FileField(upload_to="transfers/", blank=True, max_length=255)
    best_checkpoint = models.FileField(upload_to="transfers/", blank=True, max_length=255)
    onnx_file = models.FileField(upload_to="transfers/", blank=True, max_length=255)
    torchscript_file = models.FileField(upload_to="transfers/", blank=True, max_length=255)
    #: searchcore.transfer.model_card's Markdown and JSON, written when it finishes.
    model_card_md = models.TextField(blank=True)
    model_card = models.JSONField(default=dict, blank=True)

    storage_prefix = "transfers"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return self.name or f"transfer {self.pk}"

    @property
    def epochs_total(self) -> int | None:
        epochs = self.config.get("epochs")
        return epochs if isinstance(epochs, int) else None
