"""The contract every search space meets, so any strategy can search any space.

A space is a fixed sequence of categorical decisions. Controllers sample them one by one
(autoregressively), random search uniformly, and evolution mutates genotypes through
`mutate`. `decode` turns a full list of choices into a genotype and `encode` reverses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Decision:
    """One categorical choice: its name (for logs and charts) and its option labels."""

    name: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


class SearchSpace(ABC):
    """A space of genotypes reachable by a fixed sequence of decisions."""

    #: Registry name, set by subclasses.
    name: str = ""

    @abstractmethod
    def decisions(self) -> Sequence[Decision]:
        """Every decision in sampling order."""

    @abstractmethod
    def decode(self, actions: Sequence[int]) -> Any:
        """The genotype that a full list of choice indices describes."""

    @abstractmethod
    def encode(self, genotype: Any) -> list[int]:
        """The choice indices that produce `genotype` (inverse of `decode`)."""

    @abstractmethod
    def mutate(self, genotype: Any, rng: np.random.Generator) -> Any:
        """A genotype that differs from `genotype` by one small change (for evolution)."""

    @abstractmethod
    def genotype_from_dict(self, data: Mapping[str, Any]) -> Any:
        """Load and validate this space's genotype JSON form."""

    def sample(self, rng: np.random.Generator) -> Any:
        """A genotype drawn uniformly over every decision."""
        return self.decode([int(rng.integers(d.size)) for d in self.decisions()])

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so a saved search can rebuild its space."""
        return {}
