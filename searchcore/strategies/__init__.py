"""Search strategies, registered by name: `create_strategy("ppo", space, seed=0, batch_size=20)`."""

from typing import Any

from searchcore.registry import Registry
from searchcore.spaces.base import SearchSpace
from searchcore.strategies.base import Proposal, Strategy, StrategyConfig, UnknownTrialError
from searchcore.strategies.controller import ControllerConfig, ControllerStrategy, PolicyNetwork
from searchcore.strategies.evolution import EvolutionConfig, RegularizedEvolution
from searchcore.strategies.ppo import PPO, PPOConfig
from searchcore.strategies.random_search import RandomSearch
from searchcore.strategies.reinforce import Reinforce, ReinforceConfig

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
for _strategy in (RandomSearch, Reinforce, PPO, RegularizedEvolution):
    STRATEGIES.register(_strategy.name, _strategy)


def create_strategy(name: str, space: SearchSpace, *, seed: int = 0, **hparams: Any) -> Strategy:
    """A fresh strategy; unknown names raise `UnknownNameError`, bad hparams `ConfigError`."""
    return STRATEGIES.get(name)(space, seed=seed, **hparams)


__all__ = [
    "PPO",
    "STRATEGIES",
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
]
