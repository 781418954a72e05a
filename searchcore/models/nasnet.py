"""The NASNet network (Zoph et al. 2018, §3 and Figure 2) for any genotype of the cell space.

It follows tensorflow/models research/slim/nets/nasnet (nasnet.py, nasnet_utils.py):

* N@F: F, the penultimate width, is 4 × k × the base filters (slim's num_conv_filters,
  DARTS's C) for a Normal cell that concatenates k states: the last stack's cells have 4 ×
  the base per state after two doublings (`models.config.network_widths`; NASNet-A: F / 24). The
  stack is N Normal cells, a Reduction cell, N Normal, a Reduction, N Normal; each
  reduction doubles the filters.
* Stems: CIFAR, a 3×3 conv to base × stem_multiplier then BN; ImageNet, a 3×3 stride-2
  VALID conv to 32 × stem_multiplier then BN, then two Reduction cells at filter scale 1/4
  and 1/2.
* Each cell prepares its inputs: the one-back input by ReLU → 1×1 conv → BN to the cell's
  filters f, the two-back input by "reduce prev layer" (factorized reduction when it is
  larger, else a 1×1 projection when its channels differ from f). The first cell has no
  two-back input: as in slim (`prev_layer` None) and timm's `CellStem0`, its ops read the
  raw stem there, each taking the stem's width in its first layer (`searchcore.layers.ops`), unless
  `project_stem` asks for DARTS's single projection. Reduction cells stride only the ops
  that read the cell inputs. The output concatenates `cell.output_states()`; a concatenated
  input first passes through a factorized reduction in a Reduction cell and a 1×1 conv and
  BN when its width differs from f, as slim's `_combine_unused_states` does.
* A block's two branches add, or ("concat") are concatenated and projected back to f by
  ReLU → 1×1 conv → BN, so every hidden state has f channels whatever the genotype.
* Scheduled drop path, per-example, on every branch but the identity-like ops: cell i of T
  keeps with 1 − (i + 1) / T × (1 − drop_path_keep), scaled by training progress
  (`set_drop_path_progress`), and off in eval.

NASNet-A comes out at the reference sizes exactly: 6@4032 at 331×331 has timm's and Keras's
88,753,150 params, 4@1056 at 224×224 Keras's 5,289,978 and 563.6M mult-adds (Table 3: 564M);
tests/searchcore/test_nasnet_model.py holds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from searchcore.errors import ConfigError
from searchcore.layers.blocks import AUX_POOL_KERNEL, AuxiliaryHead, ConvBN, FactorizedReduction, ReLUConvBN, drop_path
from searchcore.layers.ops import DROP_PATH_EXEMPT_OPS, create_op
from searchcore.models.base import ChildNetwork
from searchcore.models.config import MIN_CELL_FILTERS, NUM_REDUCTIONS, NetworkConfig, NetworkWidths
from searchcore.spaces.nasnet import NUM_CELL_INPUTS, Block, Cell, Genotype

REFERENCE_IMAGE_SIZE = {"cifar": 32, "imagenet": 224}
IMAGENET_STEM_FILTERS = 32


@dataclass(frozen=True)
class _FeatureMap:
    """What the builder knows of a tensor: its channels and how many times it was halved."""

    channels: int
    halvings: int


@dataclass(frozen=True)
class _CellPlan:
    kind: Literal["normal", "reduction"]
    filters: int
    #: Where the two-back input sits in the list of outputs so far: −2, or −3 when
    #: skip_reduction_layer_input makes a post-reduction cell skip the reduction's input.
    prev_offset: int


class NASNetBlock(nn.Module):
    """Two (hidden state, op) branches merged by add, or by concat and a 1×1 projection."""

    def __init__(self, block: Block, filters: int, reduction: bool, state_channels: list[int]) -> None:
        super().__init__()
        self.inputs = block.inputs
        self.branches = nn.ModuleList(
            create_op(op, filters, stride=2 if reduction and state < NUM_CELL_INPUTS else 1,
                      in_channels=state_channels[state])
            for state, op in zip(block.inputs, block.ops)
        )
        self.droppable = tuple(op not in DROP_PATH_EXEMPT_OPS for op in block.ops)
        self.merge = ReLUConvBN(2 * filters, filters, 1) if block.combine == "concat" else None

    def forward(self, states: list[torch.Tensor], keep_prob: torch.Tensor | None) -> torch.Tensor:
        outputs = []
        for state, branch, droppable in zip(self.inputs, self.branches, self.droppable):
            out = branch(states[state])
            if droppable and keep_prob is not None:
                out = drop_path(out, keep_prob)
            outputs.append(out)
        if self.merge is not None:
            return self.merge(torch.cat(outputs, dim=1))
        return outputs[0] + outputs[1]


class NASNetCell(nn.Module):
    """A Normal or Reduction cell applied to (two-back, one-back) inputs.

    `prev` None means the cell has no two-back input (the first one): the raw one-back
    input, which the caller passes in both places, stands in for it unprepared.
    """

    def __init__(
        self, cell: Cell, prev: _FeatureMap | None, current: _FeatureMap, filters: int, reduction: bool,
        drop_path: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.prepare_prev = nn.Identity() if prev is None else _reduce_prev_layer(prev, current, filters)
        self.prepare_current = ReLUConvBN(current.channels, filters, 1)
        prev_channels = current.channels if prev is None else filters
        state_channels = [prev_channels] + [filters] * (cell.num_states - 1)
        self.blocks = nn.ModuleList(NASNetBlock(block, filters, reduction, state_channels) for block in cell.blocks)
        self.output_states = cell.output_states()
        # Concatenated inputs match the blocks' outputs: halved in a Reduction cell, else projected to f if they differ.
        self.reduce_output = nn.ModuleDict({
            str(state): FactorizedReduction(state_channels[state], filters, relu=False) if reduction
            else ConvBN(state_channels[state], filters)
            for state in self.output_states
            if state < NUM_CELL_INPUTS and (reduction or state_channels[state] != filters)
        })
        self.out_channels = len(self.output_states) * filters
        #: Per-cell keep probability, set by `NASNet.set_drop_path_progress`; 1 = no drop.
        self.register_buffer("drop_path_keep", torch.ones(()), persistent=False)
        self.uses_drop_path = drop_path

    def forward(self, prev: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        states = [self.prepare_prev(prev), self.prepare_current(current)]
        keep_prob = self.drop_path_keep if self.training and self.uses_drop_path else None
        for block in self.blocks:
            states.append(block(states, keep_prob))
        outputs = [
            self.reduce_output[str(i)](states[i]) if str(i) in self.reduce_output else states[i]
            for i in self.output_states
        ]
        return torch.cat(outputs, dim=1)


def _reduce_prev_layer(prev: _FeatureMap, current: _FeatureMap, filters: int) -> nn.Module:
    """slim's `_reduce_prev_layer`: match the two-back input to the one-back's size and f."""
    if prev.halvings == current.halvings - 1:
        return FactorizedReduction(prev.channels, filters, relu=True)
    assert prev.halvings == current.halvings, "the two-back input is never more than one halving larger"
    if prev.channels != filters:
        return ReLUConvBN(prev.channels, filters, 1)
    return nn.Identity()


class NASNet(ChildNetwork):
    """NASNet built from a genotype: `forward(x)` gives logits, plus aux logits in training."""

    def __init__(self, genotype: Genotype, config: NetworkConfig) -> None:
        super().__init__()
        self.genotype = genotype
        self.config = config
        widths = config.widths(genotype)
        self.base_filters = widths.base_filters
        plans = _plan_cells(config, self.base_filters)
        _check_config(config, plans, widths)

        self.stem, stem_map = _build_stem(config, self.base_filters)
        # slim's [None, stem]: the first cell has no two-back input (DARTS prepares the stem as one).
        maps: list[_FeatureMap | None] = [stem_map if config.project_stem else None, stem_map]
        cell_maps: list[_FeatureMap] = []
        self.cells = nn.ModuleList()
        for plan in plans:
            reduction = plan.kind == "reduction"
            current = cell_maps[-1] if cell_maps else stem_map
            cell = NASNetCell(
                genotype.reduction if reduction else genotype.normal,
                prev=maps[plan.prev_offset],
                current=current,
                filters=plan.filters,
                reduction=reduction,
                drop_path=config.drop_path_keep < 1.0,
            )
            self.cells.append(cell)
            cell_maps.append(_FeatureMap(cell.out_channels, current.halvings + reduction))
            maps.append(cell_maps[-1])
        self._prev_offsets = tuple(plan.prev_offset for plan in plans)
        self._cell_keep = _layer_keep_probs(config.drop_path_keep, len(plans))

        self.aux_cell_index: int | None = None
        self.aux_head: AuxiliaryHead | None = None
        if config.auxiliary:
            self.aux_cell_index = _aux_cell_index(plans)
            aux_map = cell_maps[self.aux_cell_index]
            feature_size = _feature_size(config, aux_map.halvings)
            if feature_size < AUX_POOL_KERNEL:
                raise ConfigError(
                    f"auxiliary head: image_size {_image_size(config)} leaves a {feature_size}×{feature_size} map "
                    "before the second reduction, smaller than its 5×5 pool; use larger images or auxiliary=False"
                )
            self.aux_head = AuxiliaryHead(aux_map.channels, config.num_classes, feature_size)

        self.classifier = _build_classifier(cell_maps[-1].channels, config)
        self.penultimate_filters = cell_maps[-1].channels
        _init_like_reference(self, config)
        self.set_drop_path_progress(0.0)

    def set_drop_path_progress(self, fraction: float) -> None:
        """Scale drop path to training progress, step / total_steps (the reference's schedule).

        At 0 nothing is dropped; from 1 on each cell keeps with its full per-layer rate.
        """
        fraction = min(max(float(fraction), 0.0), 1.0)
        for cell, layer_keep in zip(self.cells, self._cell_keep):
            cell.get_buffer("drop_path_keep").fill_(1.0 - fraction * (1.0 - layer_keep))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        stem = self.stem(x)
        outputs = [stem, stem]
        aux_logits = None
        for index, (cell, prev_offset) in enumerate(zip(self.cells, self._prev_offsets)):
            out = cell(outputs[prev_offset], outputs[-1])
            outputs = outputs[-2:] + [out]
            if index == self.aux_cell_index and self.aux_head is not None and self.training:
                aux_logits = self.aux_head(out)
        logits = self.classifier(outputs[-1])
        return (logits, aux_logits) if aux_logits is not None else logits

    def describe_structure(self) -> dict[str, int]:
        """Sizes worth showing next to params and mult-adds."""
        return {
            "base_filters": self.base_filters,
            "total_cells": len(self.cells),
            "penultimate_filters": self.penultimate_filters,
        }


def _plan_cells(config: NetworkConfig, base_filters: int) -> list[_CellPlan]:
    """Every cell in order, stem cells included, with its filters and two-back input."""
    if config.num_cells < 1:
        raise ConfigError(f"num_cells N = {config.num_cells} must be at least 1")
    plans: list[_CellPlan] = []
    if config.stem == "imagenet":
        for scale in (0.25, 0.5):
            plans.append(_CellPlan("reduction", int(base_filters * scale), prev_offset=-2))
    elif config.stem != "cifar":
        raise ConfigError(f"stem {config.stem!r} must be 'cifar' or 'imagenet'")
    filters = base_filters
    for stack in range(NUM_REDUCTIONS + 1):
        if stack > 0:
            filters *= 2
            plans.append(_CellPlan("reduction", filters, prev_offset=-2))
        for k in range(config.num_cells):
            skip = config.skip_reduction_layer_input and stack > 0 and k == 0
            plans.append(_CellPlan("normal", filters, prev_offset=-3 if skip else -2))
    return plans


def _build_stem(config: NetworkConfig, base_filters: int) -> tuple[nn.Sequential, _FeatureMap]:
    """The stem and the map it gives: CIFAR, a 3×3 conv and BN; ImageNet, a 3×3 stride-2 VALID conv and BN."""
    channels = _stem_channels(config, base_filters)
    halvings = 0 if config.stem == "cifar" else 1
    stem = nn.Sequential(
        nn.Conv2d(config.in_channels, channels, 3, stride=1 + halvings, padding=1 - halvings, bias=False),
        nn.BatchNorm2d(channels),
    )
    return stem, _FeatureMap(channels, halvings)


def _build_classifier(channels: int, config: NetworkConfig) -> nn.Sequential:
    """ReLU → global average pool → dropout → linear, on the last cell's `channels`."""
    return nn.Sequential(
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(config.dropout),
        nn.Linear(channels, config.num_classes),
    )


def _stem_channels(config: NetworkConfig, base_filters: int) -> int:
    base = base_filters if config.stem == "cifar" else IMAGENET_STEM_FILTERS
    return int(base * config.stem_multiplier)


def _check_config(config: NetworkConfig, plans: list[_CellPlan], widths: NetworkWidths) -> None:
    smallest = min(plan.filters for plan in plans)
    if smallest < MIN_CELL_FILTERS:
        need = MIN_CELL_FILTERS * (4 if config.stem == "imagenet" else 1)
        per_base = widths.filters // widths.base_filters
        raise ConfigError(
            f"base filters {widths.base_filters} (F = {widths.filters}) leave a cell with {smallest} filter(s); "
            f"the {config.stem} stem needs base filters >= {need} (F >= {need * per_base})"
        )
    if _stem_channels(config, widths.base_filters) < 1:
        raise ConfigError(f"stem_multiplier {config.stem_multiplier} leaves the stem without filters")
    if not 0.0 < config.drop_path_keep <= 1.0:
        raise ConfigError(f"drop_path_keep {config.drop_path_keep} must be in (0, 1]")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"dropout {config.dropout} must be in [0, 1)")
    if config.in_channels < 1 or config.num_classes < 1:
        raise ConfigError(f"in_channels {config.in_channels} and num_classes {config.num_classes} must be positive")


def _layer_keep_probs(drop_path_keep: float, total_cells: int) -> list[float]:
    """slim's per-layer keep: deeper cells drop more, the last at the full rate."""
    return [1.0 - (i + 1) / total_cells * (1.0 - drop_path_keep) for i in range(total_cells)]


def _aux_cell_index(plans: list[_CellPlan]) -> int:
    """The Normal cell just before the last reduction (slim: reduction_indices[1] − 1)."""
    last_reduction = max(i for i, plan in enumerate(plans) if plan.kind == "reduction")
    return last_reduction - 1


def _image_size(config: NetworkConfig) -> int:
    return config.image_size if config.image_size is not None else REFERENCE_IMAGE_SIZE[config.stem]


def _feature_size(config: NetworkConfig, halvings: int) -> int:
    """Side of a map `halvings` halvings deep, for the configured image size."""
    size = _image_size(config)
    if config.stem == "imagenet":  # 3×3 stride-2 VALID conv
        size = (size - 3) // 2 + 1
        halvings -= 1
    for _ in range(halvings):
        size = math.ceil(size / 2)
    return size


def _init_like_reference(model: nn.Module, config: NetworkConfig) -> None:
    """Variance scaling on fan-out (TF `variance_scaling_initializer(mode='FAN_OUT')`).

    TF draws a normal truncated at two standard deviations, widened by 1.3 so the kept
    values have variance 2 / fan_out. Fan-out counts one kernel per output channel *per
    group*, so a depthwise k×k kernel has fan-out k², as in TF, not C·k² as PyTorch's
    kaiming_normal_ would count it. BN uses the configured momentum and eps.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels // module.groups * math.prod(module.kernel_size)
            _truncated_variance_scaling(module.weight, fan_out)
        elif isinstance(module, nn.Linear):
            _truncated_variance_scaling(module.weight, module.out_features)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            module.momentum = config.bn_momentum
            module.eps = config.bn_eps
            if module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def _truncated_variance_scaling(weight: torch.Tensor, fan_out: int) -> None:
    std = math.sqrt(1.3 * 2.0 / fan_out)
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)
