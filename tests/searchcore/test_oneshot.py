"""One-shot search: the supernet's paths are the standalone children, bad settings name their field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from searchcore.data import load_dataset
from searchcore.errors import ConfigError
from searchcore.models.supernet import NASNetSupernet
from searchcore.oneshot import SUPERNETS, OneShotConfig
from searchcore.proxy import ProxyConfig
from searchcore.registry import import_target
from searchcore.spaces import create_space
from searchcore.spaces.nasnet import Block, Cell, Genotype
from searchcore.train import build_child, proxy_network_config

#: 1@48 proxies (N = 1, base filters 2) on 8 × 8 single-channel noise: every code path, little arithmetic.
DATA_OPTIONS = {"num_samples": 96, "val_samples": 48, "image_size": 8, "in_channels": 1, "num_classes": 4}
PROXY = ProxyConfig(dataset="synthetic", dataset_options=DATA_OPTIONS, cells=1, filters=48, epochs=3, batch_size=32,
                    device="cpu")
#: A small space for the training tests: 2 blocks, 3 ops (the path test uses the paper's).
SMALL_SPACE = {"num_blocks": 2, "ops": ["identity", "sep_conv_3x3", "max_pool_3x3"]}


def tiny(**changes) -> OneShotConfig:
    values = dict(proxy=PROXY, controller_steps=3, final_samples=4, top_k=2, space_options=SMALL_SPACE)
    return OneShotConfig(**{**values, **changes})


def cell(*blocks: tuple[int, int, str, str, str]) -> Cell:
    return Cell(blocks=tuple(Block(inputs=(a, b), ops=(op_a, op_b), combine=combine) for a, b, op_a, op_b, combine in blocks))


# A Normal cell whose output is one block (k = 1) and a Reduction cell of two (k = 2, whose next
# Reduction cell takes it unprojected, as f == 2 × its width); both read inputs twice.
CHAIN_AND_PAIR = Genotype(
    normal=cell((1, 1, "sep_conv_3x3", "sep_conv_3x3", "add"), (2, 2, "conv_1x7_7x1", "identity", "concat"),
                (3, 0, "max_pool_5x5", "sep_conv_7x7", "add"), (4, 1, "dilated_conv_3x3", "avg_pool_3x3", "add"),
                (5, 5, "conv_1x1", "conv_3x3", "concat")),
    reduction=cell((0, 0, "max_pool_3x3", "sep_conv_5x5", "add"), (1, 2, "identity", "conv_1x3_3x1", "concat"),
                   (3, 0, "identity", "max_pool_7x7", "add"), (1, 1, "sep_conv_3x3", "sep_conv_3x3", "add"),
                   (4, 2, "avg_pool_3x3", "identity", "add")),
)
# Every block unused (k = 5, the supernet's whole weight) against a chain.
WIDE_AND_CHAIN = Genotype(
    normal=cell(*[(k % 2, 1, "sep_conv_5x5", "identity", "add") for k in range(5)]),
    reduction=cell((0, 1, "identity", "identity", "add"), (2, 2, "max_pool_3x3", "conv_3x3", "add"),
                   (3, 1, "sep_conv_7x7", "identity", "concat"), (4, 4, "avg_pool_3x3", "identity", "add"),
                   (5, 0, "conv_1x3_3x1", "identity", "add")),
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", **DATA_OPTIONS)


@pytest.fixture(scope="module")
def supernet(data):
    """The paper's space at 1@48, with every weight and batch-norm statistic random, so a
    module mapped to the wrong place shows."""
    torch.manual_seed(0)
    network = proxy_network_config(PROXY, num_classes=data.num_classes, in_channels=data.in_channels,
                                   image_size=data.image_size)
    model = NASNetSupernet(create_space("nasnet"), network)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_()
                module.bias.normal_()
    return model.eval()


def sampled(seed: int) -> Genotype:
    return create_space("nasnet").sample(np.random.default_rng(seed))


@pytest.mark.parametrize("genotype", [CHAIN_AND_PAIR, WIDE_AND_CHAIN, sampled(1), sampled(2)],
                         ids=["chain-and-pair", "wide-and-chain", "sampled-1", "sampled-2"])
def test_a_path_is_the_standalone_child_with_the_same_weights(supernet, data, genotype):
    images = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    child = build_child(genotype, PROXY, data).eval()
    child.load_state_dict(supernet.child_state_dict(genotype), strict=True)
    supernet.set_path(genotype)
    with torch.no_grad():
        assert torch.allclose(supernet(images), child(images), atol=1e-5)

        # and back: a child's weights written into the path give the child's outputs
        for parameter in child.parameters():
            parameter.normal_()
        supernet.load_child_state_dict(genotype, child.state_dict())
        assert torch.allclose(supernet(images), child(images), atol=1e-5)


def test_a_blocks_weights_follow_it_whichever_blocks_are_concatenated_with_it(supernet):
    """ENAS shares by state: the classifier's columns for block 4 are the same whether the last
    cell concatenates block 4 alone (CHAIN_AND_PAIR) or all five blocks (WIDE_AND_CHAIN)."""
    alone = supernet.child_state_dict(CHAIN_AND_PAIR)["classifier.4.weight"]
    among_all = supernet.child_state_dict(WIDE_AND_CHAIN)["classifier.4.weight"]
    assert alone.shape[1] * 5 == among_all.shape[1]
    assert torch.equal(alone, among_all[:, -alone.shape[1]:])


@pytest.mark.parametrize("space_name", SUPERNETS.names())
def test_every_supernet_builds_a_sampled_cells_child(data, space_name):
    space = create_space(space_name, **SMALL_SPACE)
    network = proxy_network_config(PROXY, num_classes=data.num_classes, in_channels=data.in_channels,
                                   image_size=data.image_size)
    model = import_target(SUPERNETS.get(space_name))(space, network).eval()
    genotype = space.sample(np.random.default_rng(0))
    child = build_child(genotype, PROXY, data).eval()
    child.load_state_dict(model.child_state_dict(genotype), strict=True)
    model.set_path(genotype)
    images = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(images), child(images), atol=1e-5)
    with pytest.raises(ConfigError, match="lacks"):
        model.load_child_state_dict(genotype, {})


@pytest.mark.parametrize("changes, field", [
    ({"sampler": "darts"}, "sampler"),
    ({"controller": "evolution"}, "controller"),
    ({"sampler": "oneshot-random", "controller": "reinforce"}, "controller"),
    ({"sampler_options": {"lr": "fast"}}, "sampler_options"),
    ({"controller_steps": 0}, "controller_steps"),
    ({"final_samples": True}, "final_samples"),
    ({"top_k": 5, "final_samples": 4}, "top_k"),
    ({"seed": -1}, "seed"),
    ({"space": "macro"}, "space"),
    ({"space_options": {"num_blocks": 0}}, "space_options"),
    ({"proxy": {"drop_path_keep": 0.5}}, "proxy.drop_path_keep"),
    ({"proxy": {"auxiliary_weight": 0.4}}, "proxy.auxiliary_weight"),
    ({"proxy": {"epochs": 0}}, "proxy.epochs"),
    ({"proxy": {"colour": "red"}}, "proxy.colour"),
    ({"epochs": 3}, "epochs"),
])
def test_config_errors_name_the_field(changes, field):
    with pytest.raises(ConfigError) as error:
        OneShotConfig.from_dict({**tiny().to_dict(), **changes})
    assert error.value.field == field, str(error.value)


def test_config_round_trips_through_json():
    config = tiny(sampler="enas", controller="ppo", sampler_options={"batch_size": 4})
    assert OneShotConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.strategy == "ppo" and tiny(sampler="oneshot-random").strategy == "random"
    assert tiny().strategy == "reinforce" and config.epochs == PROXY.epochs
