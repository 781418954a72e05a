"""Network builders: `build_model(genotype, NetworkConfig(...))` for any space's genotype."""

from __future__ import annotations

from typing import TYPE_CHECKING

from searchcore.models.config import NETWORK_PRESETS, NetworkConfig, NetworkWidths, network_widths
from searchcore.registry import import_target
from searchcore.spaces import GenotypeLike, format_of

if TYPE_CHECKING:
    from searchcore.models.base import ChildNetwork


def build_model(genotype: GenotypeLike, config: NetworkConfig) -> ChildNetwork:
    """Build the network a genotype describes (NASNet cells stacked N@F, a NAS-v1 chain, ...)
    with the builder its format registered; the builder's module, and torch, load only now."""
    build = import_target(format_of(genotype, "build").build)
    return build(genotype, config)


__all__ = ["NETWORK_PRESETS", "NetworkConfig", "NetworkWidths", "build_model", "network_widths"]
