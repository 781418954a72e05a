"""The NASNet builder, held to the paper's counts and the slim reference's structure."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from searchcore.errors import ConfigError
from searchcore.layers.blocks import ConvBN, FactorizedReduction, ReLUConvBN, drop_path
from searchcore.models import NETWORK_PRESETS, NetworkConfig, build_model, network_widths
from searchcore.models.nasnet import NASNet
from searchcore.profile import describe
from searchcore.spaces import NasnetCellSpace
from searchcore.spaces.nasnet import Block, Cell, Genotype

# NASNet-A from slim nasnet_utils.py with slim's hidden states 0 and 1 swapped into ours
# (0 = the cell two back, 1 = the cell one back). Normal: concat h_{i-1} and every block;
# reduction: concat blocks 1..4 (slim's used_hiddenstates).
NASNET_A = Genotype(
    normal=Cell(
        blocks=(
            Block((1, 0), ("sep_conv_5x5", "sep_conv_3x3")),
            Block((0, 0), ("sep_conv_5x5", "sep_conv_3x3")),
            Block((1, 0), ("avg_pool_3x3", "identity")),
            Block((0, 0), ("avg_pool_3x3", "avg_pool_3x3")),
            Block((1, 1), ("sep_conv_3x3", "identity")),
        ),
        concat=(0, 2, 3, 4, 5, 6),
    ),
    reduction=Cell(
        blocks=(
            Block((1, 0), ("sep_conv_5x5", "sep_conv_7x7")),
            Block((1, 0), ("max_pool_3x3", "sep_conv_7x7")),
            Block((1, 0), ("avg_pool_3x3", "sep_conv_5x5")),
            Block((3, 2), ("identity", "avg_pool_3x3")),
            Block((2, 1), ("sep_conv_3x3", "max_pool_3x3")),
        ),
        concat=(3, 4, 5, 6),
    ),
)

TINY_CIFAR = NetworkConfig(num_cells=1, base_filters=2, num_classes=5, stem="cifar", stem_multiplier=1.0)
TINY_IMAGENET = NetworkConfig(num_cells=1, base_filters=8, num_classes=5, stem="imagenet", stem_multiplier=0.25)


@pytest.fixture(scope="module")
def nasnet_a() -> Genotype:
    """The registered NASNet-A when `searchcore.known` has it, checked against ours."""
    try:
        from searchcore.known import get_known
    except ImportError:
        return NASNET_A
    known = get_known("nasnet-a")
    assert known.canonical_hash() == NASNET_A.canonical_hash()
    return known


# NASNet-A at the reference sizes, exactly. The ImageNet models (1000 classes, no auxiliary
# head) have the trainable params of timm's `nasnetalarge` and Keras's NASNetLarge
# (88,753,150) and NASNetMobile (5,289,978); the mobile model's 563.6M mult-adds are Table 3's
# 564M and the large model's 23.8B Table 2's. The CIFAR model has no published exact count;
# built by the same rule (the first cell reads the raw stem) it has Table 1's 3.3M.
REFERENCE_COUNTS = [
    ("cifar", 32, 3_346_538, 544_333_312),
    ("mobile", 224, 5_289_978, 563_638_816),
    ("large", 331, 88_753_150, 23_783_414_658),
]


@pytest.mark.parametrize(("preset", "image_size", "params", "mult_adds"), REFERENCE_COUNTS)
def test_nasnet_a_has_the_reference_params_and_mult_adds(nasnet_a, preset, image_size, params, mult_adds):
    info = describe(nasnet_a, NETWORK_PRESETS[preset], image_size)
    assert (info["params"], info["mult_adds"]) == (params, mult_adds)
    # N@F: F is the penultimate width, 4 × 6 states × the base filters for NASNet-A.
    assert info["penultimate_filters"] == NETWORK_PRESETS[preset].filters
    assert info["base_filters"] == NETWORK_PRESETS[preset].filters // 24


def test_darts_v2_at_6_at_576_has_the_darts_params():
    # DARTS's CIFAR-10 network: 20 layers (6@576), C = 36 = 576 / (4 × 4 concatenated nodes).
    # quark0/darts counts 3,349,342 params without the auxiliary head (`count_parameters_in_MB`,
    # Table 1's 3.3M); its first cell projects the stem once (preprocess0), `project_stem`.
    # Reading the raw stem instead, as slim does, costs 10,440 more.
    from searchcore.known import get_known

    darts_v2 = get_known("darts-v2")
    config = NetworkConfig(num_cells=6, filters=576, project_stem=True)
    assert network_widths(darts_v2, filters=576).base_filters == 36
    info = describe(darts_v2, config, 32)
    assert (info["params"], info["base_filters"], info["total_cells"]) == (3_349_342, 36, 20)
    assert describe(darts_v2, NetworkConfig(num_cells=6, base_filters=36, project_stem=True), 32) == info
    assert describe(darts_v2, replace(config, project_stem=False), 32)["params"] == 3_349_342 + 10_440


def _cell_kinds(model: NASNet) -> list[str]:
    return ["R" if cell.reduction else "N" for cell in model.cells]


def test_stack_is_n_normal_then_reduction_with_doubling_filters(nasnet_a):
    cifar = NASNet(nasnet_a, replace(TINY_CIFAR, num_cells=2))
    assert _cell_kinds(cifar) == list("NNRNNRNN")
    assert [cell.out_channels for cell in cifar.cells] == [12, 12, 16, 24, 24, 32, 48, 48]
    imagenet = NASNet(nasnet_a, TINY_IMAGENET)
    assert _cell_kinds(imagenet) == list("RRNRNRN")
    # Stem cells at filter scale 1/4 and 1/2 of base filters = 8 (4 states concatenated).
    assert [cell.out_channels for cell in imagenet.cells][:2] == [4 * 2, 4 * 4]


def test_stems_follow_the_reference():
    cifar_stem = NASNet(NASNET_A, replace(TINY_CIFAR, stem_multiplier=3.0)).stem[0]
    assert (cifar_stem.out_channels, cifar_stem.kernel_size, cifar_stem.stride) == (6, (3, 3), (1, 1))
    imagenet_stem = NASNet(NASNET_A, replace(TINY_IMAGENET, stem_multiplier=1.0)).stem[0]
    assert (imagenet_stem.out_channels, imagenet_stem.stride, imagenet_stem.padding) == (32, (2, 2), (0, 0))


def _ops_reading_state(cell: nn.Module, state: int) -> list[nn.Module]:
    return [branch for block in cell.blocks for s, branch in zip(block.inputs, block.branches) if s == state]


def test_first_cell_ops_read_the_raw_cifar_stem_as_slims_do(nasnet_a):
    model = NASNet(nasnet_a, replace(TINY_CIFAR, stem_multiplier=3.0))  # stem: 6 channels, cells: 2
    first, second = model.cells[0], model.cells[1]
    assert isinstance(first.prepare_prev, nn.Identity)
    # NASNet-A's normal cell reads h_{i-1} with two separable convs, the identity and two average pools;
    # each takes the stem's 6 channels itself, and its concatenated h_{i-1} gets a 1×1 conv and BN.
    convs = [next(m for m in op.modules() if isinstance(m, nn.Conv2d)) for op in _ops_reading_state(first, 0)]
    assert [conv.in_channels for conv in convs] == [6] * 6
    assert isinstance(first.reduce_output["0"], ConvBN)
    # The second cell reads the stem as its two-back input like any other cell: one projection.
    assert isinstance(second.prepare_prev, ReLUConvBN) and not second.reduce_output
    _forward_backward(model, torch.randn(2, 3, 8, 8), TINY_CIFAR.num_classes)


def test_first_cell_after_the_imagenet_stem_is_timms_cell_stem_0(nasnet_a):
    model = NASNet(nasnet_a, replace(TINY_IMAGENET, stem_multiplier=1.0))  # stem: 32 channels, first cell: 2
    first = model.cells[0]
    assert isinstance(first.prepare_prev, nn.Identity)
    # CellStem0's right branches: separable 7×7, 7×7 and 5×5, stride 2, depthwise over the raw stem.
    ops = _ops_reading_state(first, 0)
    depthwise = [next(m for m in op.modules() if isinstance(m, nn.Conv2d)) for op in ops]
    assert [(d.kernel_size, d.stride, d.groups) for d in depthwise] == [
        ((7, 7), (2, 2), 32), ((7, 7), (2, 2), 32), ((5, 5), (2, 2), 32)]
    _forward_backward(model, torch.randn(2, 3, 35, 35), TINY_IMAGENET.num_classes)


def test_project_stem_gives_the_first_cell_dartss_single_projection(nasnet_a):
    model = NASNet(nasnet_a, replace(TINY_CIFAR, stem_multiplier=3.0, project_stem=True))
    first = model.cells[0]
    assert isinstance(first.prepare_prev, ReLUConvBN) and first.prepare_prev[1].in_channels == 6
    assert not first.reduce_output
    assert all(conv.in_channels == 2 for op in _ops_reading_state(first, 0)
               for conv in op.modules() if isinstance(conv, nn.Conv2d))
    _forward_backward(model, torch.randn(2, 3, 8, 8), TINY_CIFAR.num_classes)


def test_filters_or_base_filters_build_the_same_network():
    # DARTS-V2's normal cell concatenates 4 states: F = 16 × base.
    from searchcore.known import get_known

    darts_v2 = get_known("darts-v2")
    by_f = NASNet(darts_v2, replace(TINY_CIFAR, base_filters=None, filters=64))
    by_base = NASNet(darts_v2, replace(TINY_CIFAR, base_filters=4))
    assert by_f.base_filters == by_base.base_filters == 4
    assert by_f.penultimate_filters == by_base.penultimate_filters == 64
    assert [p.shape for p in by_f.parameters()] == [p.shape for p in by_base.parameters()]


def _forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    model.train()
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (x.shape[0], num_classes)
    out_sum = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    out_sum.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("combines", [("add", "concat"), ("concat",)])
def test_random_genotypes_build_and_train_with_cifar_stem(seed, combines):
    genotype = NasnetCellSpace(combines=combines).sample(np.random.default_rng(seed))
    config = replace(TINY_CIFAR, drop_path_keep=0.7)
    model = build_model(genotype, config)
    assert isinstance(model, NASNet)
    model.set_drop_path_progress(1.0)
    torch.manual_seed(seed)
    _forward_backward(model, torch.randn(2, 3, 11, 11), config.num_classes)


@pytest.mark.parametrize("seed", range(2))
def test_random_genotypes_build_and_train_with_imagenet_stem(seed):
    genotype = NasnetCellSpace().sample(np.random.default_rng(100 + seed))
    model = NASNet(genotype, TINY_IMAGENET)
    torch.manual_seed(seed)
    _forward_backward(model, torch.randn(2, 3, 35, 35), TINY_IMAGENET.num_classes)


def test_concat_combine_projects_back_to_the_cell_filters():
    block = Block((0, 1), ("sep_conv_3x3", "max_pool_3x3"), combine="concat")
    genotype = Genotype(normal=Cell(blocks=(block,)), reduction=Cell(blocks=(block,)))
    model = NASNet(genotype, TINY_CIFAR)
    merge = model.cells[0].blocks[0].merge
    assert merge[1].in_channels == 2 * 2 and merge[1].out_channels == 2  # f = base filters = 2
    _forward_backward(model, torch.randn(2, 3, 9, 9), TINY_CIFAR.num_classes)


def test_reduction_cell_reduces_the_inputs_it_concatenates():
    cell = Cell(blocks=(Block((0, 1), ("sep_conv_3x3", "identity")),), concat=(0, 1, 2))
    genotype = Genotype(normal=cell, reduction=cell)
    model = NASNet(genotype, TINY_CIFAR)
    reduction = model.cells[1]
    assert sorted(reduction.reduce_output) == ["0", "1"]
    assert all(isinstance(m, FactorizedReduction) for m in reduction.reduce_output.values())
    assert len(model.cells[0].reduce_output) == 0
    _forward_backward(model, torch.randn(2, 3, 9, 9), TINY_CIFAR.num_classes)


def _prev_inputs_of(model: NASNet, cell_index: int, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The two-back input the cell receives and every cell's output, from one forward."""
    outputs: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []
    hooks = [cell.register_forward_hook(lambda m, args, out: outputs.append(out)) for cell in model.cells]
    hooks.append(model.cells[cell_index].register_forward_pre_hook(lambda m, args: seen.append(args[0])))
    model.eval()
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen[0], outputs


@pytest.mark.parametrize("skip", [False, True])
def test_skip_reduction_layer_input_feeds_the_cell_before_the_reductions_input(nasnet_a, skip):
    model = NASNet(nasnet_a, replace(TINY_CIFAR, num_cells=2, skip_reduction_layer_input=skip))
    first_after_reduction = 3  # cells: N N R [N] N R N N
    prev, outputs = _prev_inputs_of(model, first_after_reduction, torch.randn(1, 3, 8, 8))
    expected = outputs[0] if skip else outputs[1]  # two back from the reduction cell, or its input
    assert prev is expected
    # Every other cell reads the output two back, whatever the flag.
    prev_of_last, outputs = _prev_inputs_of(model, 7, torch.randn(1, 3, 8, 8))
    assert prev_of_last is outputs[5]


def test_drop_path_changes_training_outputs_but_not_eval(nasnet_a):
    torch.manual_seed(0)
    model = NASNet(nasnet_a, replace(TINY_CIFAR, drop_path_keep=0.5))
    x = torch.randn(4, 3, 8, 8)
    model.train()
    model.set_drop_path_progress(0.0)
    assert torch.equal(model(x), model(x)), "at progress 0 nothing is dropped"
    model.set_drop_path_progress(1.0)
    torch.manual_seed(1)
    first = model(x)
    assert not torch.equal(first, model(x))
    model.eval()
    with torch.no_grad():
        evaluated = model(x)
        model.set_drop_path_progress(0.0)
        assert torch.equal(evaluated, model(x))


def test_drop_path_schedule_follows_the_reference_formula(nasnet_a):
    model = NASNet(nasnet_a, replace(TINY_CIFAR, drop_path_keep=0.6))
    total = len(model.cells)
    for progress in (0.0, 0.5, 1.0, 2.0):
        model.set_drop_path_progress(progress)
        for i, cell in enumerate(model.cells):
            layer_keep = 1 - (i + 1) / total * (1 - 0.6)
            expected = 1 - min(progress, 1.0) * (1 - layer_keep)
            assert cell.drop_path_keep.item() == pytest.approx(expected)
    assert model.cells[-1].drop_path_keep.item() == pytest.approx(0.6)


def test_drop_path_spares_identity_ops():
    identity_only = Cell(blocks=(Block((0, 1), ("identity", "identity")),))
    model = NASNet(Genotype(normal=identity_only, reduction=identity_only), replace(TINY_CIFAR, drop_path_keep=0.01))
    model.train()
    model.set_drop_path_progress(1.0)
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(model(x), model(x))


def test_drop_path_drops_whole_examples():
    torch.manual_seed(0)
    x = torch.ones(64, 3, 4, 4)
    out = drop_path(x, torch.tensor(0.5))
    per_example = out.flatten(1)
    kept = per_example[:, 0] != 0
    assert torch.equal(per_example[kept], torch.full_like(per_example[kept], 2.0))
    assert not per_example[~kept].any()
    assert 0 < kept.sum() < 64


def test_auxiliary_head_sits_before_the_second_reduction_and_only_trains(nasnet_a):
    config = replace(TINY_CIFAR, num_cells=2, auxiliary=True, image_size=16)
    model = NASNet(nasnet_a, config)
    assert model.aux_cell_index == 4  # cells: N N R N [N] R N N
    x = torch.randn(2, 3, 16, 16)
    logits, aux_logits = model(x)
    assert logits.shape == aux_logits.shape == (2, config.num_classes)
    model.eval()
    assert model(x).shape == (2, config.num_classes)
    assert NASNet(nasnet_a, TINY_CIFAR).aux_head is None


def test_auxiliary_head_reports_a_wrong_image_size(nasnet_a):
    model = NASNet(nasnet_a, replace(TINY_CIFAR, auxiliary=True, image_size=32))
    with pytest.raises(ValueError, match="image_size"):
        model(torch.randn(2, 3, 16, 16))
    with pytest.raises(ConfigError, match="auxiliary"):
        NASNet(nasnet_a, replace(TINY_CIFAR, auxiliary=True, image_size=8))


def test_channels_last_gives_the_same_outputs(nasnet_a):
    torch.manual_seed(0)
    model = NASNet(nasnet_a, replace(TINY_CIFAR, auxiliary=True, image_size=16)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    x_last = x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(model(x_last), expected, atol=1e-5)
    _forward_backward(model, x_last, TINY_CIFAR.num_classes)


def test_initialisation_is_variance_scaling_on_fan_out():
    torch.manual_seed(0)
    model = NASNet(NASNET_A, NetworkConfig(num_cells=1, filters=480, num_classes=10))
    # A depthwise 5×5 kernel has fan-out 25 (one kernel per channel), not C × 25.
    depthwise = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1 and m.kernel_size == (5, 5))
    assert depthwise.weight.std().item() == pytest.approx(math.sqrt(2 / 25), rel=0.1)
    classifier = model.classifier[-1]
    assert classifier.weight.std().item() == pytest.approx(math.sqrt(2 / 10), rel=0.1)
    assert not classifier.bias.any()


def test_batch_norm_uses_the_configured_momentum_and_eps():
    model = NASNet(NASNET_A, replace(TINY_IMAGENET, bn_momentum=0.0003, bn_eps=1e-3))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.0003 and m.eps == 1e-3 for m in norms)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"filters": 100}, "multiple of 24"),
        ({"filters": 0}, "multiple of 24"),
        ({"num_cells": 0}, "num_cells"),
        ({"filters": 24}, "F >= 48"),
        ({"stem": "imagenet", "filters": 96}, "F >= 192"),
        ({"filters": None, "base_filters": 1}, r"base filters >= 2 \(F >= 48\)"),
        ({"filters": None, "base_filters": 0}, "base_filters must be a positive whole number"),
        ({"drop_path_keep": 0.0}, "drop_path_keep"),
        ({"dropout": 1.0}, "dropout"),
        ({"stem_multiplier": 0.1}, "stem_multiplier"),
    ],
)
def test_bad_configs_raise_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        NASNet(NASNET_A, replace(TINY_CIFAR, **{"base_filters": None, "filters": 48, **change}))


def test_filters_and_base_filters_are_exclusive():
    with pytest.raises(ConfigError, match="not both"):
        NetworkConfig(filters=768, base_filters=32)
    assert NetworkConfig().filters == 768 and NetworkConfig(base_filters=32).filters is None


@pytest.mark.parametrize(("genotype_name", "filters", "message"), [
    ("nasnet-a", 100, "multiple of 24: the normal cell concatenates 6 states, so F = 4 × 6 × base filters; "
                      "nearest: 96, 120"),
    ("darts-v2", 600, "multiple of 16: the normal cell concatenates 4 states, so F = 4 × 4 × base filters; "
                      "nearest: 592, 608"),
    ("darts-v2", 8, "nearest: 16$"),
])
def test_network_widths_says_which_f_the_cell_allows(genotype_name, filters, message):
    from searchcore.known import get_known

    with pytest.raises(ConfigError, match=message):
        network_widths(get_known(genotype_name), filters=filters)
