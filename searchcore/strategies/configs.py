"""Every strategy's hyperparameters, free of torch so the web process can validate them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from searchcore.errors import ConfigError
from searchcore.strategies.base import StrategyConfig


@dataclass(frozen=True)
class ControllerConfig(StrategyConfig):
    """Controller and update hyperparameters shared by REINFORCE and PPO."""

    hidden_size: int = 100
    num_layers: int = 1
    init_range: float = 0.1
    lr: float = 3.5e-4
    entropy_weight: float = 0.0
    #: Weight of the old value in the reward baseline's exponential moving average.
    baseline_decay: float = 0.95
    #: Rewards collected per controller update.
    batch_size: int = 5

    #: The policy's shape: a fork loads its parent's weights.
    FORK_FIXED: ClassVar[tuple[str, ...]] = ("hidden_size", "num_layers")

    def validate(self) -> None:
        super().validate()
        for field, most in (("hidden_size", 4096), ("num_layers", 8), ("batch_size", 10_000)):
            if not 1 <= getattr(self, field) <= most:
                raise ConfigError(f"{field} must be in 1..{most}, got {getattr(self, field)}")
        for field in ("init_range", "lr"):
            if not getattr(self, field) > 0:
                raise ConfigError(f"{field} must be positive, got {getattr(self, field)}")
        if self.entropy_weight < 0:
            raise ConfigError(f"entropy_weight must not be negative, got {self.entropy_weight}")
        if not 0 <= self.baseline_decay < 1:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")


@dataclass(frozen=True)
class EvolutionConfig(StrategyConfig):
    """The paper's P = 100 and S = 25, and how often a child is its parent unchanged.

    Real et al. (2019) draw each child's mutation among a hidden-state mutation, an op mutation
    and the identity (the child is a copy of its parent). The default of 0.05 keeps copies
    rare; it is a setting, not a figure quoted from the paper. A copy is a repeated cell, so it
    rejoins the population, younger, with its parent's reward (or is redrawn under
    `reject_duplicates`).
    """

    population_size: int = 100
    sample_size: int = 25
    identity_probability: float = 0.05

    LEGACY_HPARAMS: ClassVar[dict[str, Any]] = {**StrategyConfig.LEGACY_HPARAMS, "identity_probability": 0.0}

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.population_size <= 100_000:
            raise ConfigError(f"population_size must be in 1..100000, got {self.population_size}")
        if not 1 <= self.sample_size <= self.population_size:
            raise ConfigError(
                f"sample_size must be in 1..population_size ({self.population_size}), got {self.sample_size}"
            )
        if not 0 <= self.identity_probability < 1:
            raise ConfigError(f"identity_probability must be in [0, 1), got {self.identity_probability}")


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
        if not 1 <= self.epochs <= 100:
            raise ConfigError(f"epochs must be in 1..100, got {self.epochs}")
