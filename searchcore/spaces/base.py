"""The contracts every search space and its genotypes meet, so any strategy can search any space.

A space is a fixed sequence of categorical decisions. Controllers sample them one by one
(autoregressively), random search uniformly, and evolution mutates genotypes through
`mutate`. `decode` turns a full list of choices into a genotype and `encode` reverses it.
Strategies, network builders, drawings and the web app see a genotype only through
`GenotypeLike`; its `format` names the registered entry that loads, builds and draws it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np


class GenotypeLike(Protocol):
    """An architecture of some space: immutable, comparable, and stored as versioned JSON.

    Equivalent architectures (the same network spelled differently) share one canonical form
    and so one `canonical_hash`, which is how a search recognises a cell it has trained.
    """

    @property
    def format(self) -> str:
        """The versioned format name, e.g. "cellsearch.nasnet/1", that `to_dict()` writes."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, including "format"."""
        ...

    def to_json(self, indent: int | None = None) -> str:
        """`to_dict()` as a JSON string."""
        ...

    def canonical(self) -> GenotypeLike:
        """The one representative of every equivalent spelling."""
        ...

    def canonical_hash(self) -> str:
        """SHA-256 of the canonical JSON: equal exactly for equivalent genotypes."""
        ...


G = TypeVar("G", bound=GenotypeLike)


@dataclass(frozen=True)
class Decision:
    """One categorical choice: its name (for logs and charts) and its option labels."""

    name: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


class SearchSpace(ABC, Generic[G]):
    """A space of genotypes (of type G) reachable by a fixed sequence of decisions."""

    #: Registry name, set by subclasses.
    name: str = ""

    @abstractmethod
    def decisions(self) -> Sequence[Decision]:
        """Every decision in sampling order."""

    @abstractmethod
    def decode(self, actions: Sequence[int]) -> G:
        """The genotype that a full list of choice indices describes."""

    @abstractmethod
    def encode(self, genotype: G) -> list[int]:
        """The choice indices that produce `genotype` (inverse of `decode`)."""

    @abstractmethod
    def mutate(self, genotype: G, rng: np.random.Generator) -> G:
        """A genotype that differs from `genotype` by one small change (for evolution)."""

    @abstractmethod
    def genotype_from_dict(self, data: Mapping[str, Any]) -> G:
        """Load and validate this space's genotype JSON form."""

    def sample(self, rng: np.random.Generator) -> G:
        """A genotype drawn uniformly over every decision."""
        return self.decode([int(rng.integers(d.size)) for d in self.decisions()])

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so a saved search can rebuild its space."""
        return {}
