"""The NASNet cell search space (Zoph et al. 2018, §2).

Each of the B blocks of the Normal and the Reduction cell is five decisions, in the paper's
order: the first hidden state, the second hidden state, an op for each, and how to combine
them. That is the controller's 2 × 5B softmaxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from searchcore.errors import ConfigError, GenotypeError
from searchcore.opnames import ALL_OPS, COMBINE_OPS, NASNET_OPS
from searchcore.spaces.base import Decision, SearchSpace
from searchcore.spaces.nasnet.genotype import MAX_BLOCKS, NUM_CELL_INPUTS, Block, Cell, Genotype, cells_of

DECISIONS_PER_BLOCK = 5


class NasnetCellSpace(SearchSpace[Genotype]):
    """B blocks per cell, ops drawn from `ops` (the paper's 13 by default)."""

    name = "nasnet"

    def __init__(
        self,
        num_blocks: int = 5,
        ops: Sequence[str] = NASNET_OPS,
        combines: Sequence[str] = COMBINE_OPS,
    ) -> None:
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or not 1 <= num_blocks <= MAX_BLOCKS:
            raise ConfigError(f"num_blocks must be a whole number in 1..{MAX_BLOCKS}, got {num_blocks!r}")
        self.num_blocks = num_blocks
        self.ops = _subset("ops", ops, ALL_OPS)
        self.combines = _subset("combines", combines, COMBINE_OPS)
        self._decisions = tuple(self._make_decisions())

    def _make_decisions(self):
        for cell in ("normal", "reduction"):
            for k in range(self.num_blocks):
                states = tuple(range(NUM_CELL_INPUTS + k))
                yield Decision(f"{cell}.{k}.input_a", states)
                yield Decision(f"{cell}.{k}.input_b", states)
                yield Decision(f"{cell}.{k}.op_a", self.ops)
                yield Decision(f"{cell}.{k}.op_b", self.ops)
                yield Decision(f"{cell}.{k}.combine", self.combines)

    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def config(self) -> dict[str, Any]:
        return {"num_blocks": self.num_blocks, "ops": list(self.ops), "combines": list(self.combines)}

    def decode(self, actions: Sequence[int]) -> Genotype:
        if len(actions) != len(self._decisions):
            raise GenotypeError(f"expected {len(self._decisions)} decisions, got {len(actions)}")
        values = [d.choices[int(a)] for d, a in zip(self._decisions, actions)]
        cells = []
        for c in range(2):
            blocks = []
            for k in range(self.num_blocks):
                start = (c * self.num_blocks + k) * DECISIONS_PER_BLOCK
                a, b, op_a, op_b, combine = values[start : start + DECISIONS_PER_BLOCK]
                blocks.append(Block(inputs=(a, b), ops=(op_a, op_b), combine=combine))
            cells.append(Cell(blocks=tuple(blocks)))
        return Genotype(normal=cells[0], reduction=cells[1])

    def encode(self, genotype: Genotype) -> list[int]:
        self._check_fits(genotype)
        actions = []
        for _, cell in cells_of(genotype):
            for block in cell.blocks:
                actions += [block.inputs[0], block.inputs[1]]
                actions += [self.ops.index(block.ops[0]), self.ops.index(block.ops[1])]
                actions.append(self.combines.index(block.combine))
        return actions

    def _check_fits(self, genotype: Genotype) -> None:
        for name, cell in cells_of(genotype):
            if len(cell.blocks) != self.num_blocks:
                raise GenotypeError(f"{name} cell: has {len(cell.blocks)} blocks, this space has {self.num_blocks}")
            if cell.output_states() != Cell(blocks=cell.blocks).output_states():
                raise GenotypeError(f"{name} cell, concat: this space concatenates exactly the unused blocks")
            for k, block in enumerate(cell.blocks):
                for j, op in enumerate(block.ops):
                    if op not in self.ops:
                        raise GenotypeError(f"{name} cell, block {k}: ops[{j}] = {op!r} is not in this space")
                if block.combine not in self.combines:
                    raise GenotypeError(f"{name} cell, block {k}: combine {block.combine!r} is not in this space")

    def mutate(self, genotype: Genotype, rng: np.random.Generator) -> Genotype:
        """Real et al. (2019): pick the Normal or the Reduction cell, then one of its blocks ("one
        of the five pairwise combinations"), then one of the block's decisions, and replace its
        choice with another. The paper's four are a hidden state or an op of either branch (the
        hidden-state and the op mutations); where this space offers more than one combine, the
        block's combine is a fifth (the combine mutation; the paper's space only adds).

        The new choice is drawn among the others, so the child always differs from its parent.
        The identity mutation is the strategy's to make.
        """
        steps = [0, 1, *([2, 3] if len(self.ops) > 1 else []), *([4] if len(self.combines) > 1 else [])]
        cell = int(rng.integers(2))
        k = int(rng.integers(self.num_blocks))
        position = (cell * self.num_blocks + k) * DECISIONS_PER_BLOCK + steps[int(rng.integers(len(steps)))]
        actions = self.encode(genotype)
        size = self._decisions[position].size
        actions[position] = (actions[position] + 1 + int(rng.integers(size - 1))) % size
        return self.decode(actions)

    def genotype_from_dict(self, data: Mapping[str, Any]) -> Genotype:
        genotype = Genotype.from_dict(data)
        self._check_fits(genotype)
        return genotype


def _subset(name: str, values: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """A non-empty list of distinct names, each one of `known`."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{name} must be a non-empty list of names from {', '.join(known)}, got {values!r}")
    for value in values:
        if value not in known:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(known)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} repeats a name: {list(values)}")
    return tuple(values)
