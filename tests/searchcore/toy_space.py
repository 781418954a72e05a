"""A search space that exists only in the tests, registered the way every real space is.

Adding a space is its genotype, its space and one `register_space` call. With the toy
registered (this folder's conftest does it while collecting and around every test), the
tests parametrised over `SPACES` and `GENOTYPE_FORMATS` cover it without a line of their
own: the space contract, every strategy, JSON loading, building a network and drawing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import graphviz
import numpy as np
from torch import nn

from searchcore.errors import GenotypeError
from searchcore.models import NetworkConfig
from searchcore.spaces import GENOTYPE_FORMATS, SPACES, Decision, GenotypeFormat, SearchSpace, register_space
from searchcore.spaces.registry import check_format, loads_json, sha256_of

TOY_FORMAT = "cellsearch.toy/1"


@dataclass(frozen=True)
class ToyGenotype:
    """A genotype that is just its choices, so nothing downstream can assume NASNet."""

    values: tuple[int, ...]

    format = TOY_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {"format": TOY_FORMAT, "values": list(self.values)}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToyGenotype:
        check_format(data, TOY_FORMAT)
        values = data.get("values")
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise GenotypeError("toy genotype: values must be a list of integers")
        return cls(tuple(values))

    @classmethod
    def from_json(cls, text: str) -> ToyGenotype:
        return cls.from_dict(loads_json(text))

    def canonical(self) -> ToyGenotype:
        return self  # every spelling is already the only one

    def canonical_hash(self) -> str:
        return sha256_of(self.canonical().to_dict())


class ToySpace(SearchSpace[ToyGenotype]):
    """Five decisions of different sizes, one of them forced (a single choice)."""

    name = "toy"
    sizes = (3, 1, 4, 2, 5)

    def decisions(self) -> Sequence[Decision]:
        return [Decision(f"d{i}", tuple(range(size))) for i, size in enumerate(self.sizes)]

    def decode(self, actions: Sequence[int]) -> ToyGenotype:
        return ToyGenotype(tuple(int(a) for a in actions))

    def encode(self, genotype: ToyGenotype) -> list[int]:
        return list(genotype.values)

    def mutate(self, genotype: ToyGenotype, rng: np.random.Generator) -> ToyGenotype:
        values = list(genotype.values)
        position = int(rng.choice([i for i, size in enumerate(self.sizes) if size > 1]))
        values[position] = (values[position] + 1 + int(rng.integers(self.sizes[position] - 1))) % self.sizes[position]
        return ToyGenotype(tuple(values))

    def genotype_from_dict(self, data: Mapping[str, Any]) -> ToyGenotype:
        genotype = ToyGenotype.from_dict(data)
        if len(genotype.values) != len(self.sizes) or not all(0 <= v < s for v, s in zip(genotype.values, self.sizes)):
            raise GenotypeError(f"toy genotype: values must be {len(self.sizes)} choices below {list(self.sizes)}")
        return genotype


def build_toy_network(genotype: ToyGenotype, config: NetworkConfig) -> nn.Module:
    """One convolution as wide as 4 + the first choice, then the classifier."""
    width = 4 + genotype.values[0]
    return nn.Sequential(nn.Conv2d(config.in_channels, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, config.num_classes))


def draw_toy(genotype: ToyGenotype) -> graphviz.Digraph:
    """One node per decision, labelled with its choice."""
    graph = graphviz.Digraph(name="toy")
    for i, value in enumerate(genotype.values):
        graph.node(f"d{i}", label=f"d{i} = {value}")
    return graph


TOY = GenotypeFormat(TOY_FORMAT, parse=ToyGenotype.from_dict,
                     build=f"{__name__}:build_toy_network", draw=f"{__name__}:draw_toy")


@contextmanager
def registered() -> Iterator[None]:
    """The toy space and its format registered for the block, then removed again (re-entrant)."""
    if ToySpace.name in SPACES:
        yield
        return
    register_space(ToySpace, TOY)
    try:
        yield
    finally:
        SPACES.unregister(ToySpace.name)
        GENOTYPE_FORMATS.unregister(TOY_FORMAT)
