"""NAS v1 (Zoph & Le 2017): an LSTM controller trained with REINFORCE."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from searchcore.strategies.controller import ControllerConfig, ControllerStrategy


@dataclass(frozen=True)
class ReinforceConfig(ControllerConfig):
    """NAS v1's controller: two-layer LSTM of 35 units, Adam lr 0.0006, weights U(±0.08).

    NAS v1 gives no baseline decay; 0.95 is NASNet's. Its controller updated from the
    rewards of many replicas; a small batch lets a short search learn early.
    """

    hidden_size: int = 35
    num_layers: int = 2
    init_range: float = 0.08
    lr: float = 6e-4
    entropy_weight: float = 0.0
    baseline_decay: float = 0.95
    batch_size: int = 5


class Reinforce(ControllerStrategy):
    """Ascend mean (reward − baseline) × log π(cell), plus an optional entropy bonus.

    The log-probabilities are those of the current policy: REINFORCE is on-policy, and a
    trial asked before the last update counts as if the current policy had drawn it.
    """

    name = "reinforce"
    config: ReinforceConfig
    config_class = ReinforceConfig

    def _update(self, actions: torch.Tensor, behaviour_log_prob: torch.Tensor, advantage: torch.Tensor) -> None:
        log_prob, entropy = self.policy.evaluate(actions)
        loss = -(advantage * log_prob).mean() - self.config.entropy_weight * entropy.mean()
        self._step(loss)
