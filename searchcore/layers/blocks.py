"""Building blocks shared by the cell ops and the NASNet network.

Padding is symmetric, `dilation × (kernel − 1) / 2` per side. For the odd kernels used here
that gives TensorFlow's SAME output size, ceil(H / stride), for even and odd H alike; the
reference pads asymmetrically, which moves the sampling grid by half a pixel but changes no
shape, parameter or multiply-add.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Per-side padding that keeps ceil(H / stride) outputs for an odd kernel."""
    return dilation * (kernel_size - 1) // 2


class PointwiseConv(nn.Conv2d):
    """A 1×1 conv without bias whose stride is taken by subsampling first, then a stride-1 conv.

    The same weights, outputs, gradients and multiply-adds as `nn.Conv2d(..., 1, stride)`, but
    it never runs oneDNN's strided 1×1 backward-weights kernel: on AVX2 CPUs (no AVX-512) that
    kernel corrupts the heap or spins forever for inputs of fewer than 8 channels, the widths
    of a small proxy (tests/faults/onednn_strided_1x1.py reproduces it with torch alone).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, 1, bias=False)
        self.subsample = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subsample > 1:
            x = x[:, :, :: self.subsample, :: self.subsample]
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, subsample={self.subsample}"


class ReLUConvBN(nn.Sequential):
    """ReLU → conv (no bias) → BN: the reference's plain convolution and 1×1 projection."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        affine: bool = True,
    ) -> None:
        conv = (
            PointwiseConv(in_channels, out_channels, stride)
            if kernel_size == 1
            else nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=same_padding(kernel_size, dilation),
                dilation=dilation,
                bias=False,
            )
        )
        super().__init__(nn.ReLU(), conv, nn.BatchNorm2d(out_channels, affine=affine))


class ConvBN(nn.Sequential):
    """1×1 conv (no bias) → BN with no ReLU first: how slim matches a width after a pool, and
    for a concatenated input (its stride-1 `factorized_reduction`)."""

    def __init__(self, in_channels: int, out_channels: int, affine: bool = True) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, affine=affine),
        )


class FactorizedReduction(nn.Module):
    """Halve H and W without skipping pixels (slim `factorized_reduction`).

    Two 1×1 stride-2 convs read grids offset by one pixel (the second after padding the
    bottom/right and cropping the top/left), their outputs are concatenated, then BN. An odd
    `out_channels` gives the second path the extra channel. `relu` adds the ReLU that
    slim's "reduce prev layer" and DARTS's strided skip apply first; slim's concat of
    unreduced cell inputs uses none.
    """

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True, affine: bool = True) -> None:
        super().__init__()
        if out_channels < 2:
            raise ValueError(f"factorized reduction needs at least 2 output channels, got {out_channels}")
        first = out_channels // 2
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.path1 = PointwiseConv(in_channels, first, stride=2)
        self.path2 = PointwiseConv(in_channels, out_channels - first, stride=2)
        self.bn = nn.BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.path1(x), self.path2(shifted)], dim=1))


def drop_path(x: torch.Tensor, keep_prob: torch.Tensor) -> torch.Tensor:
    """Zero whole examples with probability 1 − keep_prob and rescale the rest (slim `drop_path`).

    `keep_prob` is a 0-d tensor so a schedule that changes it every step neither syncs
    with the host nor recompiles a compiled model.
    """
    mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < keep_prob
    return x * (mask.to(x.dtype) / keep_prob.to(x.dtype))


AUX_POOL_KERNEL = 5
AUX_POOL_STRIDE = 3


def aux_pooled_size(feature_size: int) -> int:
    """Side of the map after the aux head's 5×5 stride-3 VALID average pool."""
    return (feature_size - AUX_POOL_KERNEL) // AUX_POOL_STRIDE + 1


class AuxiliaryHead(nn.Module):
    """The reference auxiliary classifier (slim `_build_aux_head`).

    ReLU → 5×5 stride-3 VALID avg pool → 1×1 conv to 128 → BN → ReLU → conv whose kernel
    covers the whole remaining map, to 768 → BN → ReLU → FC. That kernel depends on the
    input size, so the head is built for one `feature_size` (the side of its input map).
    """

    def __init__(self, in_channels: int, num_classes: int, feature_size: int) -> None:
        super().__init__()
        self.grid = aux_pooled_size(feature_size)
        if self.grid < 1:
            raise ValueError(f"auxiliary head needs an input map of at least 5×5, got {feature_size}×{feature_size}")
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(AUX_POOL_KERNEL, stride=AUX_POOL_STRIDE),
            nn.Conv2d(in_channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, self.grid, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if aux_pooled_size(x.shape[-2]) != self.grid or aux_pooled_size(x.shape[-1]) != self.grid:
            raise ValueError(
                f"auxiliary head was built for a {self.grid}×{self.grid} pooled map but got a "
                f"{tuple(x.shape[-2:])} input map; set NetworkConfig.image_size to the training image size"
            )
        return self.classifier(self.features(x))
