"""Cell operations, registered by name: `create_op("sep_conv_3x3", channels=32, stride=2)`.

Every op maps its input to C channels; stride 2 halves H and W to ceil(H / 2), so odd sizes
work. The input has C channels too except in the first cell, whose ops read the raw stem as
slim's do: convs then take the stem's width in their first layer, and the ops without
weights match it as slim's `_apply_conv_operation` does (a 1×1 conv and BN after a pool,
ReLU → 1×1 conv → BN for the identity). The NASNet ops follow the slim reference (nasnet_utils.py): a separable conv is
(ReLU → depthwise → pointwise → BN) twice with the stride on the first depthwise only and
nothing between depthwise and pointwise; plain convs are ReLU → conv → BN; pools use SAME
padding and average pooling ignores the padding. The DARTS extras follow quark0/darts
operations.py. No conv has a bias: each is followed by BN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from searchcore.errors import ConfigError
from searchcore.layers.blocks import ConvBN, FactorizedReduction, ReLUConvBN, same_padding
from searchcore.registry import Registry

#: (in_channels, channels, stride, affine) → the op's module.
OpBuilder = Callable[[int, int, int, bool], nn.Module]

OPS: Registry[OpBuilder] = Registry("op")

#: Ops that never get drop path. The reference skips its identity ('none') op even when
#: strided; DARTS's skip is its identity; dropping the zero op would change nothing.
DROP_PATH_EXEMPT_OPS: frozenset[str] = frozenset({"identity", "skip_connect", "none"})


def create_op(name: str, channels: int, stride: int, affine: bool = True, in_channels: int | None = None) -> nn.Module:
    """Build op `name` mapping `in_channels` (default `channels`) → `channels` with stride 1 or 2."""
    in_channels = channels if in_channels is None else in_channels
    if stride not in (1, 2):
        raise ConfigError(f"op {name!r}: stride must be 1 or 2, got {stride}")
    if channels < 1 or in_channels < 1:
        raise ConfigError(f"op {name!r}: channels must be positive, got {in_channels} → {channels}")
    return OPS.get(name)(in_channels, channels, stride, affine)


class SeparableConv(nn.Sequential):
    """ReLU → depthwise k×k → pointwise 1×1 → BN: one layer of a separable op.

    The depthwise kernel runs over the input's channels, the pointwise conv maps them to the
    output's (slim's `separable_conv2d` with depth multiplier 1).
    """

    def __init__(
        self, in_channels: int, channels: int, kernel_size: int, stride: int, dilation: int = 1, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                stride=stride,
                padding=same_padding(kernel_size, dilation),
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )


class StackedSeparableConv(nn.Sequential):
    """NASNet's `separable_kxk_2`: two separable layers, only the first strided."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int, affine: bool = True) -> None:
        super().__init__(
            SeparableConv(in_channels, channels, kernel_size, stride, affine=affine),
            SeparableConv(channels, channels, kernel_size, 1, affine=affine),
        )


class SpatiallyFactorizedConv(nn.Sequential):
    """ReLU → 1×k conv → k×1 conv → BN; each conv strides along the axis it spans."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int, affine: bool = True) -> None:
        pad = same_padding(kernel_size)
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(in_channels, channels, (1, kernel_size), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(channels, channels, (kernel_size, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )


class Zero(nn.Module):
    """DARTS's `none`: zeros shaped like the strided output, so it carries no signal."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zeros = x[:, :1, :: self.stride, :: self.stride].mul(0.0)
        return zeros.expand(-1, self.channels, -1, -1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}"


def _identity(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
    # The reference turns its identity into ReLU → strided 1×1 conv → BN when it must reduce or match widths.
    if stride == 1 and in_channels == channels:
        return nn.Identity()
    return ReLUConvBN(in_channels, channels, 1, stride=stride, affine=affine)


def _skip_connect(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
    if stride == 2:
        return FactorizedReduction(in_channels, channels, relu=True, affine=affine)
    # DARTS matches widths with its ReLU → 1×1 conv → BN preprocessing.
    return nn.Identity() if in_channels == channels else ReLUConvBN(in_channels, channels, 1, affine=affine)


def _pooled(pool: nn.Module, in_channels: int, channels: int, affine: bool) -> nn.Module:
    """A pool, then (slim) a 1×1 conv and BN when the input is not `channels` wide."""
    return pool if in_channels == channels else nn.Sequential(pool, ConvBN(in_channels, channels, affine=affine))


def _avg_pool(kernel_size: int) -> OpBuilder:
    def build(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
        pool = nn.AvgPool2d(kernel_size, stride=stride, padding=same_padding(kernel_size), count_include_pad=False)
        return _pooled(pool, in_channels, channels, affine)

    return build


def _max_pool(kernel_size: int) -> OpBuilder:
    def build(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
        pool = nn.MaxPool2d(kernel_size, stride=stride, padding=same_padding(kernel_size))
        return _pooled(pool, in_channels, channels, affine)

    return build


def _conv(kernel_size: int, dilation: int = 1) -> OpBuilder:
    def build(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
        return ReLUConvBN(in_channels, channels, kernel_size, stride=stride, dilation=dilation, affine=affine)

    return build


def _factorized_conv(kernel_size: int) -> OpBuilder:
    def build(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
        return SpatiallyFactorizedConv(in_channels, channels, kernel_size, stride, affine=affine)

    return build


def _sep_conv(kernel_size: int) -> OpBuilder:
    def build(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
        return StackedSeparableConv(in_channels, channels, kernel_size, stride, affine=affine)

    return build


def _dil_conv(kernel_size: int) -> OpBuilder:
    def build(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
        return SeparableConv(in_channels, channels, kernel_size, stride, dilation=2, affine=affine)

    return build


def _zero(in_channels: int, channels: int, stride: int, affine: bool) -> nn.Module:
    return Zero(channels, stride)


# The NASNet search space (§3).
OPS.register("identity", _identity)
OPS.register("conv_1x3_3x1", _factorized_conv(3))
OPS.register("conv_1x7_7x1", _factorized_conv(7))
OPS.register("dilated_conv_3x3", _conv(3, dilation=2))
OPS.register("avg_pool_3x3", _avg_pool(3))
OPS.register("max_pool_3x3", _max_pool(3))
OPS.register("max_pool_5x5", _max_pool(5))
OPS.register("max_pool_7x7", _max_pool(7))
OPS.register("conv_1x1", _conv(1))
OPS.register("conv_3x3", _conv(3))
OPS.register("sep_conv_3x3", _sep_conv(3))
OPS.register("sep_conv_5x5", _sep_conv(5))
OPS.register("sep_conv_7x7", _sep_conv(7))
# DARTS and ENAS extras.
OPS.register("skip_connect", _skip_connect)
OPS.register("dil_conv_3x3", _dil_conv(3))
OPS.register("dil_conv_5x5", _dil_conv(5))
OPS.register("none", _zero)

__all__ = ["DROP_PATH_EXEMPT_OPS", "OPS", "OpBuilder", "create_op"]
