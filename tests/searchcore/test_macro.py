"""The NAS-v1 macro space (Zoph & Le 2017) and the network it builds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from searchcore.errors import ConfigError, GenotypeError, SpaceExhaustedError
from searchcore.models import NetworkConfig, build_model
from searchcore.models.macro import MacroNet
from searchcore.spaces import SPACES, MacroSpace, create_space, parse_genotype
from searchcore.spaces.macro import (
    MACRO_FORMAT,
    PAPER_FILTER_SIZES,
    PAPER_NUM_FILTERS,
    PAPER_STRIDES,
    MacroGenotype,
    MacroLayer,
)

TINY = NetworkConfig(num_classes=5, in_channels=3)

#: Tiny spaces that still cover strides, skips and the plain chain.
SPACE_CONFIGS = {
    "fixed_stride": {"num_layers": 4, "num_filters": (4, 6)},
    "searched_strides": {"num_layers": 5, "num_filters": (4, 6), "strides": PAPER_STRIDES},
    "chain": {"num_layers": 4, "num_filters": (4, 6), "strides": (1, 2), "skip_connections": False},
}


@pytest.fixture(params=sorted(SPACE_CONFIGS))
def space(request) -> MacroSpace:
    return MacroSpace(**SPACE_CONFIGS[request.param])


def strided_skip_genotype() -> MacroGenotype:
    """16×16 input: layer 0 stays 16×16, layer 1 halves to 8×8, layer 2 concatenates both."""
    return MacroGenotype(layers=(
        MacroLayer(3, 3, 4),
        MacroLayer(3, 5, 6, stride=2, skips=(0,)),
        MacroLayer(1, 7, 5, skips=(1, 0)),
    ))


# -- genotype JSON ---------------------------------------------------------------------------

def test_json_round_trip_and_format_registration():
    genotype = strided_skip_genotype()
    data = genotype.to_dict()
    assert data["format"] == MACRO_FORMAT == "cellsearch.macro/1"
    assert data["layers"][2] == {"filter_height": 1, "filter_width": 7, "num_filters": 5, "stride": 1, "skips": [1, 0]}
    assert MacroGenotype.from_json(genotype.to_json(indent=2)) == genotype
    assert parse_genotype(genotype.to_json()) == genotype
    assert parse_genotype(data) == genotype


def test_stride_and_skips_default_when_absent():
    data = {"format": MACRO_FORMAT, "layers": [{"filter_height": 3, "filter_width": 1, "num_filters": 24}]}
    assert MacroGenotype.from_dict(data) == MacroGenotype(layers=(MacroLayer(3, 1, 24, stride=1, skips=()),))


def _layers(**changes) -> list[dict]:
    layers = [
        {"filter_height": 3, "filter_width": 3, "num_filters": 24, "stride": 1, "skips": []},
        {"filter_height": 5, "filter_width": 1, "num_filters": 36, "stride": 1, "skips": [0]},
    ]
    layers[1].update(changes)
    return layers


@pytest.mark.parametrize(
    "layers, message",
    [
        (_layers(filter_height=4), r"^layer 1: filter_height = 4 must be a positive odd integer$"),
        (_layers(filter_width=0), r"^layer 1: filter_width = 0 must be a positive odd integer$"),
        (_layers(filter_width=3.0), r"^layer 1: filter_width = 3.0 must be a positive odd integer$"),
        (_layers(num_filters=0), r"^layer 1: num_filters = 0 must be a positive integer$"),
        (_layers(stride=True), r"^layer 1: stride = True must be a positive integer$"),
        (_layers(skips=[1]), r"^layer 1: skips holds 1; layer 1 may read layers 0\.\.0$"),
        (_layers(skips=[0, 0]), r"^layer 1: skips repeats a layer: \[0, 0\]$"),
        (_layers(skips=0), r"^layer 1: skips must be a list of layer indices$"),
        (_layers(kernel=3), r"^layer 1: unknown field 'kernel'$"),
        ([{"filter_height": 3, "filter_width": 3}], r"^layer 0: missing field 'num_filters'$"),
        ([{"filter_height": 3, "filter_width": 3, "num_filters": 24, "skips": [0]}],
         r"^layer 0: skips holds 0; layer 0 may read no earlier layer$"),
        ([], r"^macro genotype: layers must be a non-empty tuple of layers$"),
    ],
)
def test_validation_names_layer_and_field(layers, message):
    with pytest.raises(GenotypeError, match=message):
        parse_genotype({"format": MACRO_FORMAT, "layers": layers})


def test_format_version_and_unknown_fields_are_rejected():
    with pytest.raises(GenotypeError, match="format version 'cellsearch.macro/2' is not supported"):
        MacroGenotype.from_dict({"format": "cellsearch.macro/2", "layers": _layers()})
    with pytest.raises(GenotypeError, match="unknown field"):
        MacroGenotype.from_dict({"format": MACRO_FORMAT, "layers": _layers(), "cells": []})
    with pytest.raises(GenotypeError, match="format must be 'cellsearch.macro/1'"):
        MacroGenotype.from_json(json.dumps({"format": "cellsearch.nasnet/1", "layers": _layers()}))


def test_canonical_hash_ignores_skip_order_only():
    genotype = strided_skip_genotype()
    reordered = MacroGenotype(layers=genotype.layers[:2] + (MacroLayer(1, 7, 5, skips=(0, 1)),))
    assert genotype != reordered
    assert genotype.canonical_hash() == reordered.canonical_hash()
    assert genotype.canonical_hash() == MacroGenotype.from_json(genotype.to_json()).canonical_hash()
    wider = MacroGenotype(layers=genotype.layers[:2] + (MacroLayer(1, 7, 6, skips=(0, 1)),))
    one_input = MacroGenotype(layers=genotype.layers[:2] + (MacroLayer(1, 7, 5, skips=(1,)),))
    hashes = {genotype.canonical_hash(), wider.canonical_hash(), one_input.canonical_hash()}
    assert len(hashes) == 3


def test_output_layers_are_the_unread_ones():
    genotype = MacroGenotype(layers=(
        MacroLayer(3, 3, 4), MacroLayer(3, 3, 4), MacroLayer(3, 3, 4, skips=(1,)), MacroLayer(3, 3, 4, skips=(1,)),
    ))
    assert genotype.output_layers() == (0, 2, 3)


# -- the space -------------------------------------------------------------------------------

def test_registered_and_created_by_name():
    assert "macro" in SPACES.names()
    space = create_space("macro", num_layers=4)
    assert isinstance(space, MacroSpace) and space.name == "macro"
    assert space.filter_sizes == PAPER_FILTER_SIZES == (1, 3, 5, 7)
    assert space.num_filters == PAPER_NUM_FILTERS == (24, 36, 48, 64)
    rebuilt = create_space("macro", **json.loads(json.dumps(space.config())))
    assert rebuilt.decisions() == space.decisions()


@pytest.mark.parametrize(
    "config, expected",
    [
        # The paper's stride-free 15-layer CIFAR-10 network: 3 per layer + 15·14/2 anchor sigmoids.
        ({"num_layers": 15}, 15 * 3 + 15 * 14 // 2),
        # Its strided 20-layer network also predicts a stride in [1, 2, 3] per layer.
        ({"num_layers": 20, "strides": (1, 2, 3)}, 20 * 4 + 20 * 19 // 2),
        ({"num_layers": 6, "skip_connections": False}, 6 * 3),
    ],
)
def test_decision_count(config, expected):
    assert len(MacroSpace(**config).decisions()) == expected


def test_decision_order_is_the_controllers():
    names = [d.name for d in MacroSpace(num_layers=3, strides=(1, 2)).decisions()]
    assert names[:4] == ["layer.0.filter_height", "layer.0.filter_width", "layer.0.stride", "layer.0.num_filters"]
    assert names[8] == "layer.1.reads_layer_0"
    assert names[-2:] == ["layer.2.reads_layer_0", "layer.2.reads_layer_1"]
    assert MacroSpace(num_layers=2).decisions()[-1].choices == (False, True)


def test_encode_decode_round_trip(space):
    rng = np.random.default_rng(0)
    for _ in range(50):
        genotype = space.sample(rng)
        actions = space.encode(genotype)
        assert space.decode(actions) == genotype
        assert space.genotype_from_dict(genotype.to_dict()) == genotype
        random_actions = [int(rng.integers(d.size)) for d in space.decisions()]
        assert space.encode(space.decode(random_actions)) == random_actions


def test_without_skip_connections_each_layer_reads_the_previous_one():
    genotype = MacroSpace(num_layers=4, skip_connections=False).sample(np.random.default_rng(1))
    assert [layer.skips for layer in genotype.layers] == [(), (0,), (1,), (2,)]


def test_mutate_changes_exactly_one_decision(space):
    rng = np.random.default_rng(2)
    parent = space.sample(rng)
    for _ in range(100):
        child = space.mutate(parent, rng)
        differences = [a != b for a, b in zip(space.encode(parent), space.encode(child))]
        assert sum(differences) == 1
        parent = child


def test_mutate_with_nothing_to_change_raises():
    space = MacroSpace(num_layers=1, filter_sizes=(3,), num_filters=(8,))
    with pytest.raises(SpaceExhaustedError):
        space.mutate(space.sample(np.random.default_rng(0)), np.random.default_rng(0))


@pytest.mark.parametrize(
    "config, layers, message",
    [
        ({"num_layers": 3}, _layers(), r"^genotype: has 2 layers, this space has 3$"),
        ({"num_layers": 2, "filter_sizes": (1, 3)}, _layers(),
         r"^layer 1: filter_height = 5 is not in this space \(1, 3\)$"),
        ({"num_layers": 2}, _layers(num_filters=30), r"^layer 1: num_filters = 30 is not in this space"),
        ({"num_layers": 2}, _layers(stride=2), r"^layer 1: stride = 2 is not in this space \(1\)$"),
        ({"num_layers": 2, "skip_connections": False}, _layers(skips=[]),
         r"^layer 1: skips = \[\]; this space has no skip connections, so layer 1 reads only layer 0$"),
    ],
)
def test_genotype_must_fit_the_space(config, layers, message):
    space = MacroSpace(**config)
    with pytest.raises(GenotypeError, match=message):
        space.genotype_from_dict({"format": MACRO_FORMAT, "layers": layers})


@pytest.mark.parametrize(
    "config",
    [{"num_layers": 0}, {"filter_sizes": (3, 4)}, {"num_filters": ()}, {"strides": (1, 1)}, {"strides": (0,)}],
)
def test_bad_space_config_is_rejected(config):
    with pytest.raises(ConfigError):
        MacroSpace(**config)


# -- the network -----------------------------------------------------------------------------

def test_build_model_dispatches_to_macro_net():
    assert isinstance(build_model(strided_skip_genotype(), TINY), MacroNet)


def test_skips_of_different_sizes_are_zero_padded_and_concatenated():
    torch.manual_seed(0)
    model = MacroNet(strided_skip_genotype(), TINY)
    seen: dict[int, torch.Tensor] = {}
    for k, layer in enumerate(model.layers):
        layer.register_forward_hook(lambda module, args, output, k=k: seen.__setitem__(k, output))
        if k == 2:
            layer.register_forward_pre_hook(lambda module, args: seen.__setitem__("input_2", args[0]))
    logits = model(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 5)
    assert seen[0].shape[-2:] == (16, 16) and seen[1].shape[-2:] == (8, 8)
    layer_2_input = seen["input_2"]
    assert layer_2_input.shape == (2, 4 + 6, 16, 16)  # layers 0 and 1, in ascending order
    torch.testing.assert_close(layer_2_input[:, :4], seen[0])
    torch.testing.assert_close(layer_2_input[:, 4:, :8, :8], seen[1])
    assert not layer_2_input[:, 4:, 8:, :].any() and not layer_2_input[:, 4:, :, 8:].any()


def test_equivalent_genotypes_build_the_same_network():
    genotype = strided_skip_genotype()
    reordered = MacroGenotype(layers=genotype.layers[:2] + (MacroLayer(1, 7, 5, skips=(0, 1)),))
    images = torch.randn(2, 3, 16, 16)
    torch.manual_seed(4)
    first = MacroNet(genotype, TINY).eval()(images)
    torch.manual_seed(4)
    torch.testing.assert_close(MacroNet(reordered, TINY).eval()(images), first)


def test_unconnected_layers_feed_the_classifier_and_unfed_layers_read_the_image():
    genotype = MacroGenotype(layers=(
        MacroLayer(3, 3, 4),
        MacroLayer(5, 5, 6, stride=2),  # no skips: reads the image
        MacroLayer(1, 3, 8, skips=(1,)),
    ))
    model = MacroNet(genotype, NetworkConfig(num_classes=3, in_channels=1))
    assert model.layers[1][0].in_channels == 1
    assert model.classifier.in_features == 4 + 8  # layers 0 and 2: nobody reads them
    model(torch.randn(2, 1, 16, 16)).sum().backward()
    assert model.layers[0][0].weight.grad.abs().sum() > 0


def test_layer_is_conv_bn_relu_with_same_padding_and_the_configs_batch_norm():
    config = NetworkConfig(num_classes=5, bn_momentum=0.0003, bn_eps=1e-3)
    conv, bn, relu = MacroNet(strided_skip_genotype(), config).layers[1]
    assert isinstance(conv, torch.nn.Conv2d) and conv.bias is None
    assert conv.kernel_size == (3, 5) and conv.stride == (2, 2) and conv.padding == (1, 2)
    assert isinstance(bn, torch.nn.BatchNorm2d) and (bn.momentum, bn.eps) == (0.0003, 1e-3)
    assert isinstance(relu, torch.nn.ReLU)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_random_genotypes_train_forward_and_backward(space, in_channels):
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    config = NetworkConfig(num_classes=4, in_channels=in_channels, dropout=0.5, auxiliary=True)
    for _ in range(3):
        model = build_model(space.sample(rng), config)
        model.set_drop_path_progress(0.5)
        logits = model(torch.randn(2, in_channels, 16, 16))
        assert logits.shape == (2, 4) and torch.isfinite(logits).all()
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
        # Every layer either feeds a later layer or the classifier, so every weight learns.
        assert all(p.grad is not None for p in model.parameters())
