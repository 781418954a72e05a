"""Cells: each unique genotype once, and its best result per team and proxy setting."""

from django.db import models


class Cell(models.Model):
    cell_hash = models.CharField(max_length=64, unique=True)
    space = models.CharField(max_length=50)
    #: The canonical genotype JSON (searchcore's versioned format).
    genotype = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.cell_hash[:12]


class CellResult(models.Model):
    """A cell's best trial for one team on one dataset and proxy config (results across
    proxies are not comparable, and teams do not see each other's work)."""

    cell = models.ForeignKey(Cell, on_delete=models.CASCADE, related_name="results")
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="cell_results")
    dataset = models.CharField(max_length=50)
    proxy_key = models.CharField(max_length=64)
    best_trial = models.ForeignKey("trials.Trial", on_delete=models.CASCADE, related_name="+")
    best_reward = models.FloatField()
    params = models.BigIntegerField(null=True, blank=True)
    mult_adds = models.BigIntegerField(null=True, blank=True)
    trials_count = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cell", "team", "proxy_key"], name="unique_cell_result"),
        ]
        indexes = [
            models.Index(fields=["team", "-best_reward"]),
            models.Index(fields=["team", "dataset", "-best_reward"]),
        ]
