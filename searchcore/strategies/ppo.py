"""NASNet's controller (Zoph et al. 2018, Appendix A.2): the LSTM controller trained with PPO."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from searchcore.errors import ConfigError
from searchcore.strategies.controller import ControllerConfig, ControllerStrategy


@dataclass(frozen=True)
class PPOConfig(ControllerConfig):
    """NASNet: one-layer LSTM of 100 units, lr 0.00035, entropy weight 0.00001, baseline EMA
    weight 0.95, weights U(−0.1, 0.1), minibatches of 20 architectures.

    The paper states neither the clip range nor the epochs per minibatch; 0.2 is PPO's usual
    clip (Schulman et al. 2017) and a few epochs its usual reuse of a batch.
    """

    hidden_size: int = 100
    num_layers: int = 1
    init_range: float = 0.1
    lr: float = 3.5e-4
    entropy_weight: float = 1e-5
    baseline_decay: float = 0.95
    batch_size: int = 20
    clip: float = 0.2
    epochs: int = 4

    def validate(self) -> None:
        super().validate()
        if not self.clip > 0:
            raise ConfigError(f"clip must be positive, got {self.clip}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")


class PPO(ControllerStrategy):
    """Clipped surrogate objective on the ratio π(cell) / π_ask(cell).

    π_ask is the policy that drew the cell, saved at ask time, so a reward that comes back
    after other updates (asynchronous workers) is still weighted correctly.
    """

    name = "ppo"
    config: PPOConfig
    config_class = PPOConfig

    def _update(self, actions: torch.Tensor, behaviour_log_prob: torch.Tensor, advantage: torch.Tensor) -> None:
        low, high = 1 - self.config.clip, 1 + self.config.clip
        for _ in range(self.config.epochs):
            log_prob, entropy = self.policy.evaluate(actions)
            ratio = torch.exp(log_prob - behaviour_log_prob)
            surrogate = torch.minimum(ratio * advantage, ratio.clamp(low, high) * advantage)
            loss = -surrogate.mean() - self.config.entropy_weight * entropy.mean()
            self._step(loss)
