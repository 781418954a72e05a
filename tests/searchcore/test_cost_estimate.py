"""The torch-free cost of a proxy network equals what torch counts for the network a trial trains
(`train.build_child`, counted by `profile` as the trial records it), exactly: both are integer
sums of the same layers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from searchcore.cost import dataset_shape, estimate_proxy_cost, proxy_network_cost, sample_cells
from searchcore.known import get_known
from searchcore.loaders import load_digits, load_synthetic
from searchcore.profile import count_mult_adds, count_params
from searchcore.proxy import ProxyConfig
from searchcore.spaces import NasnetCellSpace
from searchcore.spaces.nasnet import Genotype
from searchcore.train import build_child

PROXIES = [
    ProxyConfig(),  # the default: digits, N = 2, F = 96
    ProxyConfig(cells=1, filters=48, auxiliary_weight=0.4),  # the review's small proxy, with an aux head
    ProxyConfig(dataset="cifar10", cells=2, base_filters=6),
    ProxyConfig(dataset="synthetic", cells=1, base_filters=3,  # odd widths and an odd image side
                dataset_options={"image_size": 13, "in_channels": 1, "num_classes": 7}),
]


def torch_count(genotype: Genotype, config: ProxyConfig) -> tuple[int, int]:
    shape = dataset_shape(config.dataset, config.dataset_options)
    data = SimpleNamespace(num_classes=shape.num_classes, in_channels=shape.in_channels, image_size=shape.image_size)
    with torch.device("meta"):
        model = build_child(genotype, config, data)
    return count_params(model), count_mult_adds(model, shape.image_size, shape.in_channels)


@pytest.mark.parametrize("config", PROXIES, ids=["default", "review-1x48-aux", "cifar10-2xbase6", "synthetic-odd"])
def test_the_count_equals_torchs_for_random_cells(config):
    space = NasnetCellSpace()
    rng = np.random.default_rng(7)
    shape = dataset_shape(config.dataset, config.dataset_options)
    for genotype in [space.sample(rng) for _ in range(3)]:
        cost = proxy_network_cost(genotype, config, shape)
        assert (cost.params, cost.mult_adds) == torch_count(genotype, config), genotype.to_json()


@pytest.mark.parametrize("name", ["nasnet-a", "darts-v2"])
def test_the_count_equals_torchs_for_known_cells_and_the_darts_ops(name):
    """DARTS's cells concatenate 4 states and use skip_connect, dil_conv and strided identities."""
    genotype = get_known(name)
    config = ProxyConfig(cells=2, base_filters=4)
    cost = proxy_network_cost(genotype, config, dataset_shape("digits"))
    assert (cost.params, cost.mult_adds) == torch_count(genotype, config)


def test_every_op_has_a_cost_equal_to_torchs():
    """Each op in both cells, a normal block (state 1) and a strided one (state 0)."""
    ops = ["identity", "conv_1x3_3x1", "conv_1x7_7x1", "dilated_conv_3x3", "avg_pool_3x3", "max_pool_7x7",
           "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_7x7", "skip_connect", "dil_conv_5x5", "none"]
    config = ProxyConfig(cells=1, base_filters=3)
    for op in ops:
        space = NasnetCellSpace(num_blocks=1, ops=[op])
        genotype = space.sample(np.random.default_rng(0))
        cost = proxy_network_cost(genotype, config, dataset_shape("digits"))
        assert (cost.params, cost.mult_adds) == torch_count(genotype, config), op


def test_the_shapes_restate_the_loaders():
    digits = load_digits()
    shape = dataset_shape("digits")
    assert (shape.num_classes, shape.in_channels, shape.image_size, shape.train_images) == (
        digits.num_classes, digits.in_channels, digits.image_size, len(digits.train[1]))
    synthetic = load_synthetic(num_samples=40, num_classes=3)
    shape = dataset_shape("synthetic", {"num_samples": 40, "num_classes": 3})
    assert (shape.num_classes, shape.in_channels, shape.image_size, shape.train_images) == (
        synthetic.num_classes, synthetic.in_channels, synthetic.image_size, len(synthetic.train[1]))
    assert dataset_shape("cifar10").train_images == 45_000  # 50,000 less the paper's 5,000 held out (A.1)


def test_imagefolder_classes_are_its_train_folders(tmp_path):
    assert dataset_shape("imagefolder", root=tmp_path) is None
    for name in ("cat", "dog", "eel"):
        (tmp_path / "train" / name).mkdir(parents=True)
    assert dataset_shape("imagefolder", root=tmp_path).num_classes == 3


def test_the_estimate_spans_a_fixed_sample():
    config = ProxyConfig()
    cells = sample_cells()
    assert [c.canonical_hash() for c in cells] == [c.canonical_hash() for c in sample_cells()]
    estimate = estimate_proxy_cost(config, dataset_shape("digits"), cells)
    params = sorted(proxy_network_cost(cell, config, dataset_shape("digits")).params for cell in cells)
    assert (estimate.params.low, estimate.params.high, estimate.cells) == (params[0], params[-1], 32)
    assert estimate.params.low < estimate.params.median < estimate.params.high
