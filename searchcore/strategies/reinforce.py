"""NAS v1 (Zoph & Le 2017): an LSTM controller trained with REINFORCE."""

from __future__ import annotations

import torch

from searchcore.strategies.configs import ReinforceConfig
from searchcore.strategies.controller import ControllerStrategy


class Reinforce(ControllerStrategy):
    """Ascend mean (reward − baseline) × log π(cell), plus an optional entropy bonus.

    The log-probabilities are those of the current policy: REINFORCE is on-policy, and a
    trial asked before the last update counts as if the current policy had drawn it.
    """

    name = "reinforce"
    config: ReinforceConfig
    config_class = ReinforceConfig

    def _update(
        self, actions: torch.Tensor, behaviour_log_prob: torch.Tensor, advantage: torch.Tensor
    ) -> tuple[float, float]:
        log_prob, entropy = self.policy.evaluate(actions)
        loss = -(advantage * log_prob).mean() - self.config.entropy_weight * entropy.mean()
        self._step(loss)
        return loss.item(), entropy.mean().item()
