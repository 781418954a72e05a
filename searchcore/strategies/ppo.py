"""NASNet's controller (Zoph et al. 2018, Appendix A.2): the LSTM controller trained with PPO."""

from __future__ import annotations

import torch

from searchcore.strategies.configs import PPOConfig
from searchcore.strategies.controller import ControllerStrategy


class PPO(ControllerStrategy):
    """Clipped surrogate objective on the ratio π(cell) / π_ask(cell).

    π_ask is the policy that drew the cell, saved at ask time, so a reward that comes back
    after other updates (asynchronous workers) is still weighted correctly.
    """

    name = "ppo"
    config: PPOConfig
    config_class = PPOConfig

    def _update(
        self, actions: torch.Tensor, behaviour_log_prob: torch.Tensor, advantage: torch.Tensor
    ) -> tuple[float, float]:
        low, high = 1 - self.config.clip, 1 + self.config.clip
        stats = []
        for _ in range(self.config.epochs):
            log_prob, entropy = self.policy.evaluate(actions)
            ratio = torch.exp(log_prob - behaviour_log_prob)
            surrogate = torch.minimum(ratio * advantage, ratio.clamp(low, high) * advantage)
            loss = -surrogate.mean() - self.config.entropy_weight * entropy.mean()
            stats.append((loss.item(), entropy.mean().item()))
            self._step(loss)
        return stats[0]
