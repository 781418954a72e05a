"""Network builders: `build_model(genotype, NetworkConfig(...))` for any space's genotype."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from searchcore.models.config import NETWORK_PRESETS, NetworkConfig, NetworkWidths, network_widths

if TYPE_CHECKING:
    from torch import nn


def build_model(genotype: Any, config: NetworkConfig) -> nn.Module:
    """Build the network a genotype describes: NASNet cells stacked N@F, or a NAS-v1 chain."""
    from searchcore.genotype import Genotype

    if isinstance(genotype, Genotype):
        from searchcore.models.nasnet import NASNet

        return NASNet(genotype, config)
    from searchcore.models.macro import MacroNet
    from searchcore.spaces.macro import MacroGenotype

    if isinstance(genotype, MacroGenotype):
        return MacroNet(genotype, config)
    raise TypeError(f"no builder for {type(genotype).__name__}")


__all__ = ["NETWORK_PRESETS", "NetworkConfig", "NetworkWidths", "build_model", "network_widths"]
