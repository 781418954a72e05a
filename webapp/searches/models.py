"""A search: one strategy exploring one space under one proxy-training config."""

from django.conf import settings
from django.db import models

from searchcore.oneshot import SAMPLERS
from searchcore.proxy import ProxyConfig
from webapp.runs.models import ResumableRun


class Search(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    ENDED = (Status.FINISHED, Status.FAILED, Status.CANCELLED)

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="searches")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="searches")
    name = models.CharField(max_length=200, blank=True)
    space = models.CharField(max_length=50, default="nasnet")
    space_options = models.JSONField(default=dict, blank=True)
    strategy = models.CharField(max_length=50, default="ppo")
    strategy_options = models.JSONField(default=dict, blank=True)
    dataset = models.CharField(max_length=50, default="digits")
    #: The proxy-training settings: ProxyConfig.to_dict() less the dataset (its own column).
    proxy = models.JSONField(default=dict)
    #: SHA-256 of the full proxy config, dataset included (`proxy_config`), so a cell trained
    #: under the same config is not trained again.
    proxy_key = models.CharField(max_length=64, db_index=True)
    budget = models.PositiveIntegerField()
    parallelism = models.PositiveIntegerField(default=1)
    seed = models.IntegerField(default=0)
    keep_checkpoints = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    #: torch.save bytes of the strategy's state_dict; changes only inside advance_search's lock.
    strategy_state = models.BinaryField(null=True, blank=True)
    #: Cells given by hand (canonical genotype dicts), waiting for the next control step to hand
    #: them to the strategy (`Strategy.enqueue`): the web process never touches strategy_state.
    enqueued_cells = models.JSONField(default=list, blank=True)
    #: The search this one was forked from (`search_fork`), the indices of the parent's trials
    #: whose cells it starts from, and the parent's strategy state at the fork, which the first
    #: control step starts the strategy from (`Strategy.load_fork`).
    forked_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks")
    forked_trials = models.JSONField(default=list, blank=True)
    forked_state = models.BinaryField(null=True, blank=True)
    #: Trials asked of the strategy so far (the next trial's index).
    trials_issued = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["status"]),
            models.Index(fields=["team", "space", "dataset"]),
        ]

    def __str__(self) -> str:
        return self.name or f"search {self.pk}"

    @property
    def is_oneshot(self) -> bool:
        """Whether a supernet ranks its cells first (its strategy a one-shot sampler, `oneshot`)."""
        return self.strategy in SAMPLERS

    @property
    def proxy_config(self) -> ProxyConfig:
        """The proxy-training config the search's trials train under, dataset included."""
        return ProxyConfig.from_dict({**self.proxy, "dataset": self.dataset})


class OneShotRun(ResumableRun):
    """The supernet phase of a one-shot search (its strategy a searchcore.oneshot sampler): shared
    weights trained on sampled cells in one long job on a gpu worker, checkpointed every epoch
    and resumed on any worker (a ResumableRun, as a transfer). When it finishes, the best cells
    it ranked (`top`) become the search's trials, trained standalone under the search's proxy."""

    search = models.OneToOneField(Search, on_delete=models.CASCADE, related_name="oneshot")
    #: searchcore.oneshot.OneShotConfig.to_dict() without the data root (the server's
    #: CELLSEARCH_DATA_ROOT/<dataset>, added on the worker).
    config = models.JSONField()
    #: `last.pt` (torch.load(weights_only=True)): the supernet, its optimiser and the sampler.
    last_checkpoint = models.FileField(upload_to="oneshot/", blank=True, max_length=255)
    #: OneShotResult.final and .top (searchcore.oneshot.ScoredCell dicts), once it finished.
    final = models.JSONField(default=list, blank=True)
    top = models.JSONField(default=list, blank=True)

    storage_prefix = "oneshot"

    class Meta:
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"one-shot run of search {self.search_id}"

    @property
    def epochs_total(self) -> int | None:
        epochs = self.config.get("proxy", {}).get("epochs")
        return epochs if isinstance(epochs, int) else None
