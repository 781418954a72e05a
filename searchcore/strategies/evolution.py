"""Regularized (aging) evolution, Real et al. (2019), Algorithm 1.

Until `population_size` rewards are in, cells are drawn at random. After that each ask runs
a tournament: `sample_size` members drawn uniformly with replacement (as the paper's
pseudocode does), the best becomes the parent, and the child is the parent itself with
`identity_probability` (the paper's identity mutation), else `space.mutate(parent)`.
Each told child joins the population and the oldest member leaves, so a cell survives by
having good descendants, not by one lucky reward.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from searchcore.spaces.base import GenotypeLike, SearchSpace
from searchcore.strategies.base import Strategy
from searchcore.strategies.configs import EvolutionConfig


class RegularizedEvolution(Strategy):
    """Tournament selection, mutation and aging over a population of told cells."""

    name = "evolution"
    config: EvolutionConfig
    config_class = EvolutionConfig
    #: A cell given by hand joins the population when told, as a drawn child does.
    learns_from_given_cells = True

    def __init__(self, space: SearchSpace, *, seed: int = 0, **hparams: Any) -> None:
        super().__init__(space, seed=seed, **hparams)
        # Oldest first; each member is {"actions", "cell_hash", "reward"}.
        self._population: deque[dict[str, Any]] = deque()

    @property
    def population(self) -> list[tuple[str, float]]:
        """(cell hash, reward) of every member, oldest first."""
        return [(member["cell_hash"], member["reward"]) for member in self._population]

    def _draw(self) -> tuple[GenotypeLike, dict[str, Any]]:
        if len(self._population) < self.config.population_size:
            child = self.space.sample(self._rng)
        else:
            picks = self._rng.integers(len(self._population), size=self.config.sample_size)
            parent = max((self._population[int(i)] for i in picks), key=lambda member: member["reward"])
            child = self.space.decode(parent["actions"])
            if self._rng.random() >= self.config.identity_probability:
                child = self.space.mutate(child, self._rng)
        return child, {"actions": self.space.encode(child)}

    def _learn(self, record: dict[str, Any], reward: float) -> None:
        self._population.append({**record, "reward": reward})
        if len(self._population) > self.config.population_size:
            self._population.popleft()

    def _algorithm_state(self) -> dict[str, Any]:
        return {"population": list(self._population)}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        self._population = deque(state["population"])

    def _load_fork_state(self, state: dict[str, Any]) -> None:
        """A fork restarts evolution from chosen cells: its population starts empty, and the
        cells given to it (`enqueue`) join as they are told, as the paper's initial population
        does, and random draws fill what is left of `population_size`."""
        self._population = deque()
