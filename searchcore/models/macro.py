"""The NAS-v1 child network (Zoph & Le 2017, §3.3): a chain of convolutions with skip inputs.

How a `MacroGenotype` becomes a network, following the paper:

- Each layer is a convolution (filter height × width, number of filters, stride) followed by
  batch normalisation and a ReLU. §4.1 names ReLU and batch norm but not their order; we put
  BN immediately before the nonlinearity, where the batch-norm paper it cites (Ioffe &
  Szegedy 2015) places it. Padding (size − 1) / 2 keeps an H × W map at ⌈H / s⌉ × ⌈W / s⌉.
- A layer's input is the depth-concatenation, in ascending layer order, of exactly the
  earlier layers its anchor point chose (`skips`). The previous layer is an input only when
  chosen: the anchor has a sigmoid for it like for any other layer.
- "If a layer is not connected to any input layer then the image is used as the input layer."
- "At the final layer we take all layer outputs that have not been connected and concatenate
  them before sending this final hiddenstate to the classifier."
- "If input layers to be concatenated have different sizes, we pad the small layers with
  zeros so that the concatenated layers have the same sizes." Strided layers shrink the map;
  the paper does not say on which side to pad, so we pad at the bottom and right, keeping
  index (0, 0) at the top-left of every map. The same rule applies to the final concatenation.

The classifier (global average pool → dropout → linear) is ours; the paper does not describe
one. Pooling a zero-padded map scales its channels by a constant that the linear layer
absorbs, because the map sizes are fixed by the genotype and the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchcore.layers.blocks import same_padding
from searchcore.models.base import ChildNetwork
from searchcore.models.config import NetworkConfig
from searchcore.spaces.macro import MacroGenotype, MacroLayer


class ConvBNReLU(nn.Sequential):
    """One NAS-v1 layer; the conv has no bias because BN's shift replaces it."""

    def __init__(self, in_channels: int, layer: MacroLayer, config: NetworkConfig) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                layer.num_filters,
                kernel_size=(layer.filter_height, layer.filter_width),
                stride=layer.stride,
                padding=(same_padding(layer.filter_height), same_padding(layer.filter_width)),
                bias=False,
            ),
            nn.BatchNorm2d(layer.num_filters, eps=config.bn_eps, momentum=config.bn_momentum),
            nn.ReLU(),
        )


def concat_zero_padded(maps: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate feature maps in depth, zero-padding smaller ones at the bottom and right."""
    if len(maps) == 1:
        return maps[0]
    height = max(m.shape[-2] for m in maps)
    width = max(m.shape[-1] for m in maps)
    padded = [F.pad(m, (0, width - m.shape[-1], 0, height - m.shape[-2])) for m in maps]
    return torch.cat(padded, dim=1)


class MacroNet(ChildNetwork):
    """The network a `MacroGenotype` describes; `forward` returns logits.

    Uses `config.in_channels`, `num_classes`, `dropout`, `bn_eps` and `bn_momentum`. The
    N@F fields (num_cells, filters, stem, drop path, image_size) describe stacked cells, which
    a NAS-v1 network does not have, and `config.auxiliary` is ignored: the paper's child
    networks have no auxiliary head, so the trainer always gets plain logits.
    """

    def __init__(self, genotype: MacroGenotype, config: NetworkConfig) -> None:
        super().__init__()
        self.genotype = genotype
        # Inputs in ascending layer order, so genotypes with equal canonical hashes build equal nets.
        self._layer_inputs = tuple(layer.skips for layer in genotype.canonical().layers)
        self._output_layers = genotype.output_layers()
        channels: list[int] = []
        self.layers = nn.ModuleList()
        for layer in genotype.layers:
            in_channels = sum(channels[j] for j in layer.skips) if layer.skips else config.in_channels
            self.layers.append(ConvBNReLU(in_channels, layer, config))
            channels.append(layer.num_filters)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(sum(channels[j] for j in self._output_layers), config.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        for layer, inputs in zip(self.layers, self._layer_inputs):
            x = concat_zero_padded([outputs[j] for j in inputs]) if inputs else images
            outputs.append(layer(x))
        hidden = concat_zero_padded([outputs[j] for j in self._output_layers])
        return self.classifier(self.dropout(torch.flatten(self.global_pool(hidden), 1)))

    def set_drop_path_progress(self, fraction: float) -> None:
        """Does nothing: ScheduledDropPath drops branches of NASNet cells, and a NAS-v1
        network has no cells. It exists so the trainer can call it on any model."""
