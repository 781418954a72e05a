"""Parameters and multiply-adds, counted the way the NASNet paper reports them.

The paper's tables count the network used at inference: the auxiliary head, a training-only
classifier, is left out. Mult-adds are those of the convolutions and the fully connected
layer for one image (pooling, BN and activations are not multiply-adds of weights). They are
counted by `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add) over a
forward pass on the meta device, which tracks only shapes, so even NASNet-A 6@4032 at
331×331 (24 G mult-adds) is counted in well under a second without computing anything.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from searchcore.models import NetworkConfig, build_model

#: Models keep a training-only auxiliary classifier under this attribute name.
AUX_HEAD_ATTRIBUTE = "aux_head"


def count_params(model: nn.Module) -> int:
    """Trainable parameters of `model`, leaving out its auxiliary head as the paper does."""
    aux_head = getattr(model, AUX_HEAD_ATTRIBUTE, None)
    excluded = {id(p) for p in aux_head.parameters()} if isinstance(aux_head, nn.Module) else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in excluded)


def count_mult_adds(model: nn.Module, image_size: int, in_channels: int = 3) -> int:
    """Multiply-adds of one `image_size`² image through `model` in eval mode.

    The model's own weights are neither used nor changed: the pass runs on meta copies of
    its parameters and buffers. Eval mode leaves out the auxiliary head and dropout.
    """
    meta_state = {
        name: torch.empty_like(tensor, device="meta")
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]
    }
    image = torch.empty(1, in_channels, image_size, image_size, device="meta")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            functional_call(model, meta_state, (image,))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def describe(genotype: Any, config: NetworkConfig, image_size: int) -> dict[str, Any]:
    """Params and mult-adds of the network `genotype` and `config` describe, plus its sizes.

    Builds the network on the meta device (no memory, no initialisation cost) and without
    its auxiliary head, which the counts leave out anyway.
    """
    with torch.device("meta"):
        model = build_model(genotype, replace(config, auxiliary=False))
    info: dict[str, Any] = {
        "params": count_params(model),
        "mult_adds": count_mult_adds(model, image_size, config.in_channels),
    }
    structure = getattr(model, "describe_structure", None)
    if callable(structure):
        info.update(structure())
    return info


__all__ = ["count_mult_adds", "count_params", "describe"]
