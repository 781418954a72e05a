"""What the analysis page needs that the trials do not hold."""

from django.db import models


class ControllerUpdate(models.Model):
    """One policy update of a search's RL controller (searchcore's `UpdateStats`).

    The control step saves these rows in the transaction that saves the strategy state counting
    them, so the web process, which never loads a policy (or torch), can plot them."""

    search = models.ForeignKey("searches.Search", on_delete=models.CASCADE, related_name="controller_updates")
    #: 0, 1, 2... in the order the strategy made them (a fork counts its own from 0).
    update = models.PositiveIntegerField()
    #: Trials told to the strategy when it updated, failed and outside ones included.
    trials_told = models.PositiveIntegerField()
    #: The policy's mean entropy over the batch's cells, before the update's first step.
    entropy = models.FloatField()
    loss = models.FloatField()
    #: The reward baseline (a moving average) after the batch's last reward.
    baseline = models.FloatField()
    mean_advantage = models.FloatField()

    class Meta:
        ordering = ["search", "update"]
        constraints = [models.UniqueConstraint(fields=["search", "update"], name="unique_controller_update")]

    def __str__(self) -> str:
        return f"update {self.update} of search {self.search_id}"
