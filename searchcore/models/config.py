"""Typed network configuration, the paper's three presets, and N@F for any cell.

Free of torch, so the web process can say how wide a trial's network is without building it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from searchcore.errors import ConfigError
from searchcore.spaces.nasnet import Genotype

#: Each reduction doubles the filters, so the last stack's cells have 2² = 4 × the base
#: filters per state: F = 4 × k × base for a normal cell that concatenates k states.
NUM_REDUCTIONS = 2
PENULTIMATE_FILTERS_PER_STATE = 2**NUM_REDUCTIONS
#: Factorized reduction splits a cell's filters over two paths, so every cell needs two:
#: base filters >= 2 with the CIFAR stem, >= 8 with the ImageNet stem (first cell at 1/4 scale).
MIN_CELL_FILTERS = 2
DEFAULT_FILTERS = 768


@dataclass(frozen=True)
class NetworkWidths:
    """F and the base filters it stands for, in one network (N@F's F is the first)."""

    #: F: the penultimate layer's filters, 4 × `concat_states` × `base_filters`.
    filters: int
    #: Filters per state in the first stack: slim's num_conv_filters, DARTS's C.
    base_filters: int
    #: States the Normal cell concatenates into its output.
    concat_states: int


def network_widths(genotype: Genotype, *, filters: int | None = None, base_filters: int | None = None) -> NetworkWidths:
    """F and the base filters for `genotype`, from exactly one of the two.

    F = 4 × k × base, k the states the Normal cell concatenates (6 for NASNet-A: F / 24; 4 for
    DARTS: F / 16), so F must be a positive multiple of 4k.
    """
    if (filters is None) == (base_filters is None):
        raise ConfigError("give filters F or base_filters, not both" if filters is not None
                          else "give filters F or base_filters")
    concat_states = len(genotype.normal.output_states())
    step = PENULTIMATE_FILTERS_PER_STATE * concat_states
    if base_filters is not None:
        if isinstance(base_filters, bool) or not isinstance(base_filters, int) or base_filters < 1:
            raise ConfigError(f"base_filters must be a positive whole number, got {base_filters!r}")
        return NetworkWidths(step * base_filters, base_filters, concat_states)
    if isinstance(filters, bool) or not isinstance(filters, int):
        raise ConfigError(f"filters F must be a whole number, got {filters!r}")
    if filters < step or filters % step:
        raise ConfigError(
            f"filters F = {filters} must be a positive multiple of {step}: the normal cell concatenates "
            f"{concat_states} states, so F = {PENULTIMATE_FILTERS_PER_STATE} × {concat_states} × base filters; "
            f"nearest: {', '.join(map(str, _nearest_multiples(filters, step)))}"
        )
    return NetworkWidths(filters, filters // step, concat_states)


def _nearest_multiples(value: int, step: int) -> list[int]:
    below = value // step * step
    return [m for m in (below, below + step) if m >= step]


@dataclass(frozen=True)
class NetworkConfig:
    """How to stack cells into a network, in the paper's N@F notation.

    `num_cells` is N, the Normal cells between reductions. Give the width as `filters`, F, the
    filters in the penultimate layer, or as `base_filters`, each state's filters in the first
    stack (slim's num_conv_filters, DARTS's C), not both; with neither, F = 768. F = 4 × k ×
    base for a Normal cell that concatenates k states (`network_widths`).

    `image_size` is the side of the (square) training images. Only the auxiliary head
    depends on it, because its last conv spans the whole map it sees; None means the stem's
    reference size, 32 for the CIFAR stem and 224 for the ImageNet stem. `bn_momentum` is
    PyTorch's (1 − the reference's decay). The first cell has no two-back input: slim's ops
    read the raw stem in its place; `project_stem` gives them the stem through ReLU → 1×1
    conv → BN instead, as DARTS's networks do.
    """

    num_cells: int = 6
    filters: int | None = None
    base_filters: int | None = None
    num_classes: int = 10
    in_channels: int = 3
    stem: Literal["cifar", "imagenet"] = "cifar"
    stem_multiplier: float = 3.0
    project_stem: bool = False
    drop_path_keep: float = 1.0
    auxiliary: bool = False
    dropout: float = 0.0
    skip_reduction_layer_input: bool = False
    image_size: int | None = None
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.filters is not None and self.base_filters is not None:
            raise ConfigError(f"give filters F ({self.filters}) or base_filters ({self.base_filters}), not both")
        if self.filters is None and self.base_filters is None:
            object.__setattr__(self, "filters", DEFAULT_FILTERS)

    def widths(self, genotype: Genotype) -> NetworkWidths:
        """F and the base filters of the network this config builds for `genotype`."""
        return network_widths(genotype, filters=self.filters, base_filters=self.base_filters)


#: The reference configurations (slim nasnet.py): CIFAR 6@768, mobile 4@1056, large 6@4032,
#: with slim's batch-norm settings (CIFAR decay 0.9, eps 1e-5; ImageNet decay 0.9997, eps 1e-3).
NETWORK_PRESETS: dict[str, NetworkConfig] = {
    "cifar": NetworkConfig(num_cells=6, filters=768, num_classes=10, stem="cifar", stem_multiplier=3.0,
                           drop_path_keep=0.6, auxiliary=True, dropout=0.0, image_size=32),
    "mobile": NetworkConfig(num_cells=4, filters=1056, num_classes=1000, stem="imagenet", stem_multiplier=1.0,
                            drop_path_keep=1.0, auxiliary=True, dropout=0.5, image_size=224,
                            bn_momentum=0.0003, bn_eps=1e-3),
    "large": NetworkConfig(num_cells=6, filters=4032, num_classes=1000, stem="imagenet", stem_multiplier=3.0,
                           drop_path_keep=0.7, auxiliary=True, dropout=0.5, skip_reduction_layer_input=True,
                           image_size=331, bn_momentum=0.0003, bn_eps=1e-3),
}
