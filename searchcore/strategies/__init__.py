"""Search strategies, registered by name: `create_strategy("ppo", space, seed=0, batch_size=20)`.

Importing this package does not import torch: the controllers load on first use, and
`validate_strategy_options` checks hyperparameters with the torch-free config classes.
"""

import importlib
from typing import Any

from searchcore.registry import Registry
from searchcore.spaces.base import SearchSpace
from searchcore.strategies.base import Proposal, Strategy, StrategyConfig, UnknownTrialError
from searchcore.strategies.configs import ControllerConfig, EvolutionConfig, PPOConfig, ReinforceConfig

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
STRATEGIES.register_lazy("random", "searchcore.strategies.random_search:RandomSearch")
STRATEGIES.register_lazy("reinforce", "searchcore.strategies.reinforce:Reinforce")
STRATEGIES.register_lazy("ppo", "searchcore.strategies.ppo:PPO")
STRATEGIES.register_lazy("evolution", "searchcore.strategies.evolution:RegularizedEvolution")

#: Each registered strategy's hyperparameter dataclass (a test keeps it in step with STRATEGIES).
STRATEGY_CONFIGS: dict[str, type[StrategyConfig]] = {
    "random": StrategyConfig,
    "reinforce": ReinforceConfig,
    "ppo": PPOConfig,
    "evolution": EvolutionConfig,
}


def create_strategy(name: str, space: SearchSpace, *, seed: int = 0, **hparams: Any) -> Strategy:
    """A fresh strategy; unknown names raise `UnknownNameError`, bad hparams `ConfigError`."""
    return STRATEGIES.get(name)(space, seed=seed, **hparams)


def validate_strategy_options(name: str, options: dict[str, Any]) -> StrategyConfig:
    """Check a strategy's name and hyperparameters without building it (or importing torch)."""
    if name not in STRATEGY_CONFIGS:
        STRATEGIES.get(name)  # raises UnknownNameError listing the known names
    return STRATEGY_CONFIGS[name].from_hparams(name, options)


_LAZY_EXPORTS = {
    "ControllerStrategy": "searchcore.strategies.controller",
    "PolicyNetwork": "searchcore.strategies.controller",
    "PPO": "searchcore.strategies.ppo",
    "RandomSearch": "searchcore.strategies.random_search",
    "RegularizedEvolution": "searchcore.strategies.evolution",
    "Reinforce": "searchcore.strategies.reinforce",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PPO",
    "STRATEGIES",
    "STRATEGY_CONFIGS",
    "ControllerConfig",
    "ControllerStrategy",
    "EvolutionConfig",
    "PPOConfig",
    "PolicyNetwork",
    "Proposal",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "ReinforceConfig",
    "Strategy",
    "StrategyConfig",
    "UnknownTrialError",
    "create_strategy",
    "validate_strategy_options",
]
