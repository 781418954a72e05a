"""Typed network configuration and the paper's three presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: N@F: F, the penultimate layer's filters, is 24 × the reference code's num_conv_filters
#: (a NASNet-A normal cell concatenates 6 states at 4× the base filters).
FILTERS_PER_CONV_FILTER = 24
#: Factorized reduction splits a cell's filters over two paths, so every cell needs two:
#: F >= 48 with the CIFAR stem, F >= 192 with the ImageNet stem (first cell at 1/4 scale).
MIN_CELL_FILTERS = 2


@dataclass(frozen=True)
class NetworkConfig:
    """How to stack cells into a network, in the paper's N@F notation.

    `num_cells` is N, the Normal cells between reductions; `filters` is F, the filters in
    the penultimate layer (the reference code's num_conv_filters = F / 24).

    `image_size` is the side of the (square) training images. Only the auxiliary head
    depends on it, because its last conv spans the whole map it sees; None means the stem's
    reference size, 32 for the CIFAR stem and 224 for the ImageNet stem. `bn_momentum` is
    PyTorch's (1 − the reference's decay).
    """

    num_cells: int = 6
    filters: int = 768
    num_classes: int = 10
    in_channels: int = 3
    stem: Literal["cifar", "imagenet"] = "cifar"
    stem_multiplier: float = 3.0
    drop_path_keep: float = 1.0
    auxiliary: bool = False
    dropout: float = 0.0
    skip_reduction_layer_input: bool = False
    image_size: int | None = None
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5


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
