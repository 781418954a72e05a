"""The op registry: every op maps C → C channels (or a wider input, the raw stem, → C) at stride 1
and 2, faithful to the reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from searchcore.errors import ConfigError, UnknownNameError
from searchcore.layers.blocks import FactorizedReduction
from searchcore.layers.ops import OPS, create_op
from searchcore.opnames import ALL_OPS

CHANNELS = 4
HEIGHT, WIDTH = 7, 9  # odd and unequal, so SAME padding and the stride-2 rounding both show


def test_registry_holds_exactly_the_named_ops():
    assert set(OPS.names()) == set(ALL_OPS)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", OPS.names())
def test_op_forward_backward_keeps_channels_and_halves_with_stride(name, stride):
    torch.manual_seed(0)
    op = create_op(name, CHANNELS, stride)
    x = torch.randn(2, CHANNELS, HEIGHT, WIDTH, requires_grad=True)
    out = op(x)
    assert out.shape == (2, CHANNELS, math.ceil(HEIGHT / stride), math.ceil(WIDTH / stride))
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for param_name, param in op.named_parameters():
        assert param.grad is not None, f"{name}: {param_name} got no gradient"
    for module in op.modules():
        if isinstance(module, nn.Conv2d):
            assert module.bias is None, f"{name}: convs are followed by BN and carry no bias"


STEM_CHANNELS = 6  # the first cell's ops read the raw stem, wider than the cell


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", OPS.names())
def test_op_maps_a_wider_input_to_its_channels(name, stride):
    torch.manual_seed(0)
    op = create_op(name, CHANNELS, stride, in_channels=STEM_CHANNELS)
    x = torch.randn(2, STEM_CHANNELS, HEIGHT, WIDTH, requires_grad=True)
    out = op(x)
    assert out.shape == (2, CHANNELS, math.ceil(HEIGHT / stride), math.ceil(WIDTH / stride))
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_separable_conv_from_the_stem_runs_depthwise_on_the_stem_then_points_to_the_cell():
    # slim's separable_conv2d (timm's BranchSeparables with stem_cell=True): only the first layer sees the stem.
    op = create_op("sep_conv_7x7", CHANNELS, stride=2, in_channels=STEM_CHANNELS)
    depthwise_1, pointwise_1, depthwise_2, pointwise_2 = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    assert (depthwise_1.in_channels, depthwise_1.groups, pointwise_1.in_channels) == (STEM_CHANNELS,) * 3
    assert pointwise_1.out_channels == depthwise_2.groups == pointwise_2.out_channels == CHANNELS
    assert sum(p.numel() for p in op.parameters()) == (
        STEM_CHANNELS * 49 + STEM_CHANNELS * CHANNELS + 2 * CHANNELS + CHANNELS * 49 + CHANNELS**2 + 2 * CHANNELS
    )


@pytest.mark.parametrize(("name", "kinds"), [
    # slim's _apply_conv_operation: a pool then a 1×1 conv and BN; the identity as ReLU → 1×1 conv → BN.
    ("avg_pool_3x3", ["AvgPool2d", "Conv2d", "BatchNorm2d"]),
    ("max_pool_3x3", ["MaxPool2d", "Conv2d", "BatchNorm2d"]),
    ("identity", ["ReLU", "Conv2d", "BatchNorm2d"]),
    ("skip_connect", ["ReLU", "Conv2d", "BatchNorm2d"]),
])
def test_weightless_ops_match_a_wider_input_like_the_reference(name, kinds):
    layers = _layers(create_op(name, CHANNELS, 1, in_channels=STEM_CHANNELS))
    assert _kinds(layers) == kinds
    conv = next(m for m in layers if isinstance(m, nn.Conv2d))
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (STEM_CHANNELS, CHANNELS, (1, 1))


def _layers(op: nn.Module) -> list[nn.Module]:
    return [m for m in op.modules() if not isinstance(m, nn.Sequential)]


def _kinds(layers: list[nn.Module]) -> list[str]:
    """Layer type names, any convolution (a 1×1 may be a Conv2d subclass) as Conv2d."""
    return ["Conv2d" if isinstance(m, nn.Conv2d) else type(m).__name__ for m in layers]


def test_separable_conv_is_relu_depthwise_pointwise_bn_twice_strided_once():
    op = create_op("sep_conv_5x5", CHANNELS, stride=2)
    layers = _layers(op)
    assert [type(m).__name__ for m in layers] == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"] * 2
    depthwise_1, pointwise_1, depthwise_2, pointwise_2 = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert depthwise_1.groups == CHANNELS and depthwise_1.kernel_size == (5, 5) and depthwise_1.stride == (2, 2)
    assert depthwise_2.groups == CHANNELS and depthwise_2.stride == (1, 1)
    assert pointwise_1.kernel_size == (1, 1) and pointwise_2.kernel_size == (1, 1)
    # Two depthwise 5×5 kernels, two C×C pointwise, two BN (scale and shift).
    assert sum(p.numel() for p in op.parameters()) == 2 * (CHANNELS * 25 + CHANNELS**2 + 2 * CHANNELS)


@pytest.mark.parametrize(("name", "kernel"), [("conv_1x3_3x1", 3), ("conv_1x7_7x1", 7)])
def test_spatially_factorized_conv_is_relu_1xk_kx1_bn(name, kernel):
    layers = _layers(create_op(name, CHANNELS, stride=2))
    assert [type(m).__name__ for m in layers] == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"]
    assert layers[1].kernel_size == (1, kernel) and layers[2].kernel_size == (kernel, 1)


@pytest.mark.parametrize(("name", "kernel", "dilation"), [("conv_1x1", 1, 1), ("conv_3x3", 3, 1),
                                                          ("dilated_conv_3x3", 3, 2)])
def test_plain_convs_are_relu_conv_bn(name, kernel, dilation):
    layers = _layers(create_op(name, CHANNELS, stride=1))
    assert _kinds(layers) == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert layers[1].kernel_size == (kernel, kernel) and layers[1].dilation == (dilation, dilation)
    assert layers[1].groups == 1


@pytest.mark.parametrize(("name", "kernel"), [("dil_conv_3x3", 3), ("dil_conv_5x5", 5)])
def test_darts_dilated_convs_are_one_dilated_separable_layer(name, kernel):
    layers = _layers(create_op(name, CHANNELS, stride=2))
    assert [type(m).__name__ for m in layers] == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"]
    depthwise = layers[1]
    assert depthwise.groups == CHANNELS and depthwise.dilation == (2, 2) and depthwise.kernel_size == (kernel, kernel)


def test_identity_is_free_at_stride_1_and_a_strided_relu_conv_bn_at_stride_2():
    x = torch.randn(1, CHANNELS, 5, 5)
    assert torch.equal(create_op("identity", CHANNELS, 1)(x), x)
    op = create_op("identity", CHANNELS, 2)
    layers = _layers(op)
    assert _kinds(layers) == ["ReLU", "Conv2d", "BatchNorm2d"] and layers[1].kernel_size == (1, 1)
    assert op(x).shape == (1, CHANNELS, 3, 3)  # strided


def test_skip_connect_is_identity_or_factorized_reduction():
    x = torch.randn(1, CHANNELS, 5, 5)
    assert torch.equal(create_op("skip_connect", CHANNELS, 1)(x), x)
    assert isinstance(create_op("skip_connect", CHANNELS, 2), FactorizedReduction)


def test_average_pool_ignores_padding():
    # With the padding counted, the border of a constant map would shrink towards zero.
    out = create_op("avg_pool_3x3", CHANNELS, 2)(torch.ones(1, CHANNELS, HEIGHT, WIDTH))
    assert torch.allclose(out, torch.ones_like(out))


@pytest.mark.parametrize("name", ["max_pool_3x3", "max_pool_5x5", "max_pool_7x7"])
def test_max_pool_padding_never_wins(name):
    out = create_op(name, CHANNELS, 1)(torch.full((1, CHANNELS, HEIGHT, WIDTH), -3.0))
    assert torch.equal(out, torch.full_like(out, -3.0))


def test_zero_op_outputs_zeros():
    out = create_op("none", CHANNELS, 2)(torch.randn(1, CHANNELS, HEIGHT, WIDTH))
    assert out.shape == (1, CHANNELS, 4, 5) and not out.any()


def test_affine_false_gives_batch_norm_without_weights():
    op = create_op("sep_conv_3x3", CHANNELS, 1, affine=False)
    norms = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.weight is None and m.bias is None for m in norms)


def test_create_op_rejects_bad_stride_channels_and_unknown_name():
    with pytest.raises(ConfigError, match="stride"):
        create_op("conv_3x3", CHANNELS, 3)
    with pytest.raises(ConfigError, match="channels must be positive"):
        create_op("conv_3x3", CHANNELS, 1, in_channels=0)
    with pytest.raises(UnknownNameError, match="sep_conv_3x3"):
        create_op("sep_conv_9x9", CHANNELS, 1)
