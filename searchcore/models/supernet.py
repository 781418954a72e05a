"""The one-shot supernet of the NASNet cell space: every child's weights in one network.

ENAS (Pham et al. 2018, "Efficient Neural Architecture Search via Parameter Sharing", §2.3,
its micro search space) shares one set of weights among every cell of the space: each
block's choice of input and op selects one of a set of candidate modules, a sampled cell
runs only the modules it selects, and its gradient steps only those. Here:

* The builder's conventions are the child's (`models.nasnet`, `project_stem=True` as every
  proxy network has): the same stem, N@F stacking, reductions, preparation of the two cell
  inputs and classifier, built by the same code, so a found cell builds and transfers like
  any other.
* A candidate is one module per (cell, block, branch, input state, op), made by
  `layers.ops.create_op` exactly as the child makes it; ENAS keeps a weight per (node,
  previous node, op) likewise. Both branches of a block have their own candidates, so a
  block reading the same state with the same op twice maps to two modules, as in the child.
* A cell's output concatenates its unused blocks, so the layers reading it (the next cells'
  1×1 preparation and the classifier) see 1..B block outputs. They hold the weight for all
  B and gather the columns of the blocks present, as ENAS's `final_conv` gathers its weight
  by the indices of the unused nodes. Where the child has no layer at all (a two-back input
  already f wide at the same scale passes through), the supernet passes it through too.

`set_path(genotype)` chooses the cell `forward` runs; `child_state_dict(genotype)` is the
state dict of the standalone network `searchcore.train.build_child` builds for it (the
path's weights, gathered), and `load_child_state_dict` writes such a network's weights back
into the path. Drop path and the auxiliary head are not shared: a supernet refuses them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from searchcore.errors import ConfigError
from searchcore.layers.blocks import FactorizedReduction, ReLUConvBN
from searchcore.layers.ops import create_op
from searchcore.models.base import Supernet
from searchcore.models.config import PENULTIMATE_FILTERS_PER_STATE, NetworkConfig, NetworkWidths
from searchcore.models.nasnet import (
    _build_classifier,
    _build_stem,
    _check_config,
    _init_like_reference,
    _plan_cells,
)
from searchcore.spaces.nasnet import NUM_CELL_INPUTS, Block, Cell, Genotype, NasnetCellSpace

#: Slots of a map the stem gives: one, always whole.
STEM_SLOTS: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class _SlottedMap:
    """A map that concatenates some of `slots` states of `slot_channels` each, `halvings` deep."""

    slot_channels: int
    slots: int
    halvings: int

    @property
    def max_channels(self) -> int:
        return self.slot_channels * self.slots


@functools.lru_cache(maxsize=1024)
def _slot_columns(present: tuple[int, ...], slot_channels: int, device: torch.device) -> Tensor:
    """Column indices of `present` slots of `slot_channels` each, made once per device (no copy per step)."""
    slots = torch.tensor(present, device=device).unsqueeze(1)
    return (slots * slot_channels + torch.arange(slot_channels, device=device)).flatten()


@dataclass(frozen=True)
class _SlicedLayer:
    """A layer whose weights read a `_SlottedMap`: every parameter of two or more dimensions
    has one column block per slot along dimension 1."""

    module: nn.Module
    source: _SlottedMap

    def columns(self, present: tuple[int, ...], device: torch.device) -> Tensor | None:
        """Indices of the columns the `present` slots use; None when all are present (in order)."""
        if len(present) == self.source.slots:
            return None
        return _slot_columns(present, self.source.slot_channels, device)

    def __call__(self, x: Tensor, present: tuple[int, ...]) -> Tensor:
        index = self.columns(present, x.device)
        if index is None:
            return self.module(x)
        weights = {name: p.index_select(1, index) for name, p in self.module.named_parameters() if p.dim() > 1}
        return functional_call(self.module, weights, (x,))


class _CandidateBlock(nn.Module):
    """One block's candidates: `candidates[branch][input state][op]`, and the concat's projection."""

    def __init__(self, index: int, space: NasnetCellSpace, filters: int, reduction: bool) -> None:
        super().__init__()
        states = range(NUM_CELL_INPUTS + index)
        self.candidates = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleDict({
                    op: create_op(op, filters, stride=2 if reduction and state < NUM_CELL_INPUTS else 1)
                    for op in space.ops
                })
                for state in states
            )
            for _branch in range(2)
        )
        self.merge = ReLUConvBN(2 * filters, filters, 1) if "concat" in space.combines else None

    def branch(self, branch: int, state: int, op: str) -> nn.Module:
        return self.candidates[branch][state][op]  # type: ignore[index]

    def forward(self, block: Block, states: list[Tensor]) -> Tensor:
        outputs = [self.branch(j, state, op)(states[state]) for j, (state, op) in enumerate(zip(block.inputs, block.ops))]
        if block.combine == "concat":
            assert self.merge is not None  # set_path checked the combine is in the space
            return self.merge(torch.cat(outputs, dim=1))
        return outputs[0] + outputs[1]


class _SupernetCell(nn.Module):
    """A Normal or Reduction cell of any genotype, on slotted (two-back, one-back) inputs."""

    def __init__(
        self, space: NasnetCellSpace, prev: _SlottedMap, current: _SlottedMap, filters: int, reduction: bool
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.filters = filters
        # The child's `_reduce_prev_layer`: a factorized reduction when the two-back input is one
        # halving larger, else a 1×1 projection, or nothing when it is already f wide (`_prev_passes`).
        self.prev_reduces = prev.halvings == current.halvings - 1
        self.prepare_prev: nn.Module = (
            FactorizedReduction(prev.max_channels, filters, relu=True) if self.prev_reduces
            else ReLUConvBN(prev.max_channels, filters, 1)
        )
        self.prepare_current = ReLUConvBN(current.max_channels, filters, 1)
        self.prev_layer = _SlicedLayer(self.prepare_prev, prev)
        self.current_layer = _SlicedLayer(self.prepare_current, current)
        self.blocks = nn.ModuleList(_CandidateBlock(k, space, filters, reduction) for k in range(space.num_blocks))

    def prev_passes(self, present: tuple[int, ...]) -> bool:
        """Whether the child feeds the two-back input through unchanged (f wide, same scale)."""
        return not self.prev_reduces and len(present) * self.prev_layer.source.slot_channels == self.filters

    def forward(
        self, cell: Cell, prev: Tensor, prev_slots: tuple[int, ...], current: Tensor, current_slots: tuple[int, ...]
    ) -> Tensor:
        states = [
            prev if self.prev_passes(prev_slots) else self.prev_layer(prev, prev_slots),
            self.current_layer(current, current_slots),
        ]
        for block, candidates in zip(cell.blocks, self.blocks):
            states.append(candidates(block, states))
        return torch.cat([states[i] for i in cell.output_states()], dim=1)


def output_slots(cell: Cell) -> tuple[int, ...]:
    """The block slots a cell's output concatenates (block k is slot k), ascending."""
    return tuple(state - NUM_CELL_INPUTS for state in cell.output_states())


class NASNetSupernet(Supernet):
    """Every cell of `space` in one network of `config`'s shape (see the module docstring)."""

    def __init__(self, space: NasnetCellSpace, config: NetworkConfig) -> None:
        super().__init__()
        if not config.project_stem:
            raise ConfigError("supernet: needs project_stem (the proxy networks' first cell), so every state is f wide")
        if config.auxiliary or config.drop_path_keep < 1.0:
            raise ConfigError("supernet: the auxiliary head and drop path are not shared; turn them off")
        if config.base_filters is None:
            raise ConfigError("supernet: give base_filters; F follows each sampled cell")
        self.space = space
        self.config = config
        blocks = space.num_blocks
        plans = _plan_cells(config, config.base_filters)
        widest = NetworkWidths(PENULTIMATE_FILTERS_PER_STATE * blocks * config.base_filters, config.base_filters, blocks)
        _check_config(config, plans, widest)

        self.stem, stem_map = _build_stem(config, config.base_filters)
        stem = _SlottedMap(stem_map.channels, 1, stem_map.halvings)
        maps = [stem, stem]
        self.cells = nn.ModuleList()
        for plan in plans:
            reduction = plan.kind == "reduction"
            cell = _SupernetCell(space, maps[plan.prev_offset], maps[-1], plan.filters, reduction)
            self.cells.append(cell)
            maps.append(_SlottedMap(plan.filters, blocks, maps[-1].halvings + reduction))
        self._prev_offsets = tuple(plan.prev_offset for plan in plans)
        self.classifier = _build_classifier(maps[-1].max_channels, config)
        self.classifier_layer = _SlicedLayer(self.classifier, maps[-1])
        _init_like_reference(self, config)
        self._path: Genotype | None = None

    # -- the path ------------------------------------------------------------------------------
    def set_path(self, genotype: Genotype) -> None:
        """Run `genotype`'s cells from now on; GenotypeError when it is not a cell of the space."""
        self.space.encode(genotype)
        self._path = genotype

    @property
    def path(self) -> Genotype:
        if self._path is None:
            raise ConfigError("supernet: no path chosen; call set_path(genotype) first")
        return self._path

    def set_drop_path_progress(self, fraction: float) -> None:
        """Nothing to scale: a supernet has no drop path."""

    def _cells_of(self, genotype: Genotype) -> Iterator[tuple[int, _SupernetCell, Cell, int]]:
        for index, (cell, prev_offset) in enumerate(zip(self.cells, self._prev_offsets)):
            assert isinstance(cell, _SupernetCell)
            yield index, cell, genotype.reduction if cell.reduction else genotype.normal, prev_offset

    def forward(self, x: Tensor) -> Tensor:
        genotype = self.path
        stem = self.stem(x)
        outputs = [(stem, STEM_SLOTS), (stem, STEM_SLOTS)]
        for _, cell, cell_genotype, prev_offset in self._cells_of(genotype):
            out = cell(cell_genotype, *outputs[prev_offset], *outputs[-1])
            outputs = outputs[-2:] + [(out, output_slots(cell_genotype))]
        final, slots = outputs[-1]
        return self.classifier_layer(final, slots)

    # -- to and from the standalone child -------------------------------------------------------
    def _path_layers(self, genotype: Genotype) -> Iterator[tuple[str, nn.Module, Tensor | None]]:
        """(the child's module name, the supernet's module, the columns it gathers or None) for
        every module with weights on `genotype`'s path."""
        self.space.encode(genotype)
        device = next(self.parameters()).device
        yield "stem", self.stem, None
        slots = [STEM_SLOTS, STEM_SLOTS]
        for index, cell, cell_genotype, prev_offset in self._cells_of(genotype):
            name = f"cells.{index}"
            if not cell.prev_passes(slots[prev_offset]):
                yield f"{name}.prepare_prev", cell.prepare_prev, cell.prev_layer.columns(slots[prev_offset], device)
            yield f"{name}.prepare_current", cell.prepare_current, cell.current_layer.columns(slots[-1], device)
            for k, (block, candidates) in enumerate(zip(cell_genotype.blocks, cell.blocks)):
                assert isinstance(candidates, _CandidateBlock)
                for j, (state, op) in enumerate(zip(block.inputs, block.ops)):
                    yield f"{name}.blocks.{k}.branches.{j}", candidates.branch(j, state, op), None
                if block.combine == "concat" and candidates.merge is not None:
                    yield f"{name}.blocks.{k}.merge", candidates.merge, None
            slots = slots[-2:] + [output_slots(cell_genotype)]
        yield "classifier", self.classifier, self.classifier_layer.columns(slots[-1], device)

    def child_state_dict(self, genotype: Genotype) -> dict[str, Tensor]:
        """The state dict of `build_child(genotype, ...)`'s network holding this path's weights
        (copies): `child.load_state_dict(supernet.child_state_dict(genotype))`."""
        state: dict[str, Tensor] = {}
        for prefix, module, columns in self._path_layers(genotype):
            for name, tensor in module.state_dict().items():
                gathered = tensor.index_select(1, columns) if columns is not None and tensor.dim() > 1 else tensor
                state[f"{prefix}.{name}"] = gathered.detach().clone()
        return state

    @torch.no_grad()
    def load_child_state_dict(self, genotype: Genotype, state: dict[str, Tensor]) -> None:
        """Write a standalone child's weights (its `state_dict()`) into `genotype`'s path; the
        rest of the supernet is left as it was. ConfigError when the keys are not the child's."""
        expected: set[str] = set()
        for prefix, module, columns in self._path_layers(genotype):
            for name, tensor in module.state_dict().items():
                key = f"{prefix}.{name}"
                expected.add(key)
                if key not in state:
                    raise ConfigError(f"supernet: the child's state lacks {key!r}; is it this genotype's network?")
                source = state[key].to(tensor.device, tensor.dtype)
                if columns is not None and tensor.dim() > 1:
                    tensor.index_copy_(1, columns, source)
                else:
                    tensor.copy_(source)
        unexpected = sorted(set(state) - expected)
        if unexpected:
            raise ConfigError(f"supernet: the child's state has {unexpected[0]!r}, which this genotype's path lacks")
