"""Search strategies, registered by name: `create_strategy("ppo", space, seed=0, batch_size=20)`.

A new strategy is one `register_strategy` call. Importing this package does not import
torch: the strategy classes load on first use (`STRATEGIES.get(name)`, or their modules), and `validate_strategy_options` checks
hyperparameters with the torch-free config classes.
"""

from typing import Any

from searchcore.registry import Registry
from searchcore.spaces.base import SearchSpace
from searchcore.strategies.base import Proposal, Strategy, StrategyConfig, UnknownTrialError
from searchcore.strategies.configs import ControllerConfig, EvolutionConfig, PPOConfig, ReinforceConfig

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
#: Each registered strategy's hyperparameter dataclass, known before its class is imported.
STRATEGY_CONFIGS: dict[str, type[StrategyConfig]] = {}


def register_strategy(name: str, target: str, config: type[StrategyConfig]) -> None:
    """Make a strategy creatable by `name`: `target` ("module:Class") is imported on first use,
    while `config`, its torch-free hyperparameter dataclass, validates options before then."""
    STRATEGIES.register_lazy(name, target)
    STRATEGY_CONFIGS[name] = config


register_strategy("random", "searchcore.strategies.random_search:RandomSearch", StrategyConfig)
register_strategy("reinforce", "searchcore.strategies.reinforce:Reinforce", ReinforceConfig)
register_strategy("ppo", "searchcore.strategies.ppo:PPO", PPOConfig)
register_strategy("evolution", "searchcore.strategies.evolution:RegularizedEvolution", EvolutionConfig)


def create_strategy(name: str, space: SearchSpace, *, seed: int = 0, **hparams: Any) -> Strategy:
    """A fresh strategy; unknown names raise `UnknownNameError`, bad hparams `ConfigError`."""
    return STRATEGIES.get(name)(space, seed=seed, **hparams)


def validate_strategy_options(name: str, options: dict[str, Any]) -> StrategyConfig:
    """Check a strategy's name and hyperparameters without building it (or importing torch)."""
    if name not in STRATEGY_CONFIGS:
        STRATEGIES.get(name)  # raises UnknownNameError listing the known names
    return STRATEGY_CONFIGS[name].from_hparams(name, options)


__all__ = [
    "STRATEGIES",
    "STRATEGY_CONFIGS",
    "ControllerConfig",
    "EvolutionConfig",
    "PPOConfig",
    "Proposal",
    "ReinforceConfig",
    "Strategy",
    "StrategyConfig",
    "UnknownTrialError",
    "create_strategy",
    "register_strategy",
    "validate_strategy_options",
]
