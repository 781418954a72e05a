"""The LSTM controller of NAS (Zoph & Le 2017) and NASNet, and the strategy base both RL methods share.

The controller emits the space's decisions one at a time. Step t's input embeds the choice
made at step t − 1 (a learned start vector feeds step 0), and decision t has its own softmax
head: NASNet's 2 × 5B softmaxes. The joint log-probability of a cell is the sum over steps.

Sampling runs on CPU with the strategy's numpy generator over float64 softmax probabilities,
so the only randomness is plain data that `state_dict` saves.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from searchcore.spaces.base import GenotypeLike, SearchSpace
from searchcore.strategies.base import Strategy
from searchcore.strategies.configs import ControllerConfig


class PolicyNetwork(nn.Module):
    """An autoregressive LSTM policy over a fixed sequence of categorical decisions.

    Stacked `LSTMCell`s rather than `nn.LSTM`: sampling steps one decision at a time, where
    the cells cost a third as much per step on CPU, and training reuses the same step.
    """

    def __init__(self, decision_sizes: Sequence[int], hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.decision_sizes = tuple(decision_sizes)
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        # The last decision's choice feeds no later step, so it needs no embedding.
        self.embeddings = nn.ModuleList(nn.Embedding(size, hidden_size) for size in self.decision_sizes[:-1])
        self.layers = nn.ModuleList(nn.LSTMCell(hidden_size, hidden_size) for _ in range(num_layers))
        self.heads = nn.ModuleList(nn.Linear(hidden_size, size) for size in self.decision_sizes)

    def reset_parameters(self, init_range: float, rng: np.random.Generator) -> None:
        """Every weight uniform in ±init_range, as both papers do; drawn from `rng` to stay seeded."""
        with torch.no_grad():
            for param in self.parameters():
                values = rng.uniform(-init_range, init_range, size=tuple(param.shape))
                param.copy_(torch.from_numpy(values))

    def _step(
        self, step: int, step_input: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]] | None
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Log-probabilities of decision `step` and the new per-layer (h, c) states."""
        new_state = []
        hidden = step_input
        for depth, layer in enumerate(self.layers):
            hidden, cell = layer(hidden, None if state is None else state[depth])
            new_state.append((hidden, cell))
        return F.log_softmax(self.heads[step](hidden), dim=-1), new_state

    @torch.inference_mode()
    def sample(self, rng: np.random.Generator) -> tuple[list[int], float]:
        """Draw one choice per decision; returns the choices and their joint log-probability."""
        step_input: torch.Tensor = self.start
        state = None
        actions: list[int] = []
        log_prob = 0.0
        for step in range(len(self.decision_sizes)):
            log_probs, state = self._step(step, step_input, state)
            probs = log_probs[0].double().exp().numpy()
            action = int(rng.choice(len(probs), p=probs / probs.sum()))
            actions.append(action)
            log_prob += float(log_probs[0, action])
            if step < len(self.embeddings):
                step_input = self.embeddings[step].get_parameter("weight")[action : action + 1]
        return actions, log_prob

    def evaluate(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint log-probability and summed per-step entropy of a (batch, decisions) tensor of choices."""
        batch = actions.shape[0]
        step_input, state = self.start.expand(batch, -1), None
        log_prob = self.start.new_zeros(batch)
        entropy = self.start.new_zeros(batch)
        for step in range(len(self.decision_sizes)):
            log_probs, state = self._step(step, step_input, state)
            log_prob = log_prob + log_probs.gather(1, actions[:, step : step + 1]).squeeze(1)
            entropy = entropy - (log_probs.exp() * log_probs).sum(dim=-1)
            if step < len(self.embeddings):
                step_input = self.embeddings[step](actions[:, step])
        return log_prob, entropy


@dataclass(frozen=True)
class UpdateStats:
    """One policy update, as the analysis page plots it (the web process never loads the policy).

    `entropy` and `loss` are the policy's before the update's first step, `trials_told` counts
    every trial told by then (failed and outside ones included), and `baseline` is the moving
    average after the batch's last reward."""

    update: int
    trials_told: int
    entropy: float
    loss: float
    baseline: float
    mean_advantage: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class ControllerStrategy(Strategy):
    """Samples cells from a `PolicyNetwork` and updates it with Adam every `batch_size` rewards.

    Each told reward becomes an advantage against an exponential-moving-average baseline as
    of that tell (the first reward seeds the baseline), then joins a buffer; a full buffer
    is one policy-gradient update, which `_update` defines. Each update's `UpdateStats` wait
    in `take_update_stats` for the caller to keep; only the count of updates is saved state.
    """

    config: ControllerConfig
    config_class = ControllerConfig

    def __init__(self, space: SearchSpace, *, seed: int = 0, **hparams: Any) -> None:
        super().__init__(space, seed=seed, **hparams)
        sizes = [decision.size for decision in space.decisions()]
        self.policy = PolicyNetwork(sizes, self.config.hidden_size, self.config.num_layers)
        self.policy.reset_parameters(self.config.init_range, self._rng)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)
        self._baseline: float | None = None
        self._buffer: list[dict[str, Any]] = []
        self._updates = 0
        self._update_stats: list[UpdateStats] = []

    @property
    def baseline(self) -> float | None:
        """The current reward baseline; None until the first reward."""
        return self._baseline

    def _draw(self) -> tuple[GenotypeLike, dict[str, Any]]:
        actions, log_prob = self.policy.sample(self._rng)
        return self.space.decode(actions), {"actions": actions, "log_prob": log_prob}

    def _learn(self, record: dict[str, Any], reward: float) -> None:
        if self._baseline is None:
            self._baseline = reward
        advantage = reward - self._baseline
        decay = self.config.baseline_decay
        baseline = self._baseline = decay * self._baseline + (1 - decay) * reward
        self._buffer.append({**record, "advantage": advantage})
        if len(self._buffer) >= self.config.batch_size:
            advantages = torch.tensor([item["advantage"] for item in self._buffer])
            loss, entropy = self._update(
                actions=torch.tensor([item["actions"] for item in self._buffer], dtype=torch.long),
                behaviour_log_prob=torch.tensor([item["log_prob"] for item in self._buffer]),
                advantage=advantages,
            )
            self._update_stats.append(UpdateStats(
                update=self._updates, trials_told=self._next_trial_id - len(self._pending), entropy=entropy,
                loss=loss, baseline=baseline, mean_advantage=float(advantages.mean())))
            self._updates += 1
            self._buffer = []

    def take_update_stats(self) -> list[UpdateStats]:
        """The updates made since the last call, oldest first, and forget them."""
        stats, self._update_stats = self._update_stats, []
        return stats

    @abstractmethod
    def _update(
        self, actions: torch.Tensor, behaviour_log_prob: torch.Tensor, advantage: torch.Tensor
    ) -> tuple[float, float]:
        """Improve the policy from one full buffer; `behaviour_log_prob` was recorded at ask time.
        Returns the loss and the mean entropy of the policy before the first step."""

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def _algorithm_state(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self._baseline,
            "buffer": self._buffer,
            "updates": self._updates,
        }

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._baseline = state["baseline"]
        self._buffer = list(state["buffer"])
        self._updates = state.get("updates", 0)  # absent from states saved before the analysis page

    def _load_fork_state(self, state: dict[str, Any]) -> None:
        """The parent's policy, Adam moments, baseline and unspent rewards, at the fork's own
        learning rate (the optimizer's saved state would bring back the parent's)."""
        self._load_algorithm_state(state)
        self._updates = 0  # the fork counts its own updates, as it counts its own trials
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr
