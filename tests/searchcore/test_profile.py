"""Params and mult-adds counted as the paper does: convs and FC, one image, no auxiliary head."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from searchcore.known import get_known
from searchcore.models import NETWORK_PRESETS, NetworkConfig
from searchcore.models.nasnet import NASNet
from searchcore.profile import count_mult_adds, count_params, describe
from searchcore.spaces import NasnetCellSpace

GENOTYPE = NasnetCellSpace().sample(np.random.default_rng(0))
TINY = NetworkConfig(num_cells=1, base_filters=2, num_classes=5, auxiliary=True, image_size=16)


def test_mult_adds_of_convs_and_fc_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),  # 8 × 3 × 9 per output pixel
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),  # depthwise: 9 per output
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10),
    )
    expected = 8 * 3 * 9 * 7 * 7 + 8 * 9 * 4 * 4 + 32 * 10
    assert count_mult_adds(model, image_size=7) == expected
    assert count_params(model) == 8 * 27 + 16 + 8 * 9 + 32 * 10 + 10


def test_counts_leave_out_the_auxiliary_head():
    with_aux = NASNet(GENOTYPE, TINY)
    without_aux = NASNet(GENOTYPE, replace(TINY, auxiliary=False))
    aux_params = sum(p.numel() for p in with_aux.aux_head.parameters())
    assert aux_params > 0
    assert count_params(with_aux) == count_params(without_aux)
    assert count_params(with_aux) == sum(p.numel() for p in with_aux.parameters()) - aux_params
    # Counting a model in training mode still runs the inference network only.
    with_aux.train()
    assert count_mult_adds(with_aux, 16) == count_mult_adds(without_aux, 16)


def test_counting_leaves_the_model_untouched():
    model = NASNet(GENOTYPE, TINY).train()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    count_mult_adds(model, 16)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(not p.is_meta for p in model.parameters())


def test_mult_adds_grow_with_the_image():
    model = NASNet(GENOTYPE, replace(TINY, auxiliary=False))
    small, large = count_mult_adds(model, 16), count_mult_adds(model, 32)
    # Every conv scales with the pixel count; only the FC layer does not.
    assert 3.9 * small < large < 4.0 * small


def test_describe_matches_a_real_model_and_reports_its_sizes():
    info = describe(GENOTYPE, TINY, 16)
    model = NASNet(GENOTYPE, TINY)
    assert info["params"] == count_params(model)
    assert info["mult_adds"] == count_mult_adds(model, 16)
    assert info["base_filters"] == 2 and info["total_cells"] == 5
    assert info["penultimate_filters"] == model.penultimate_filters


def test_describe_ignores_the_aux_heads_image_size():
    # The aux head is left out, so an image too small for it can still be described.
    info = describe(GENOTYPE, replace(TINY, image_size=None), 8)
    assert info["params"] > 0 and info["mult_adds"] > 0


def test_describing_the_large_model_takes_seconds_not_minutes():
    # NASNet-A 6@4032 at 331×331 has 88.8M params and 23.8G mult-adds: far too much to build
    # and run on a CPU in a test, but the meta device only tracks shapes.
    start = time.perf_counter()
    info = describe(get_known("nasnet-a"), NETWORK_PRESETS["large"], 331)
    assert time.perf_counter() - start < 15
    assert (info["params"], info["mult_adds"]) == (88_753_150, 23_783_414_658)  # timm's nasnetalarge: 88,753,150


def test_mobile_nasnet_a_counts_as_the_paper_does():
    # Table 3: 5.3M params, 564M mult-adds. Keras's NASNetMobile has 5,289,978 trainable params;
    # the mult-adds are the convs' and the FC layer's for one 224×224 image.
    info = describe(get_known("nasnet-a"), NETWORK_PRESETS["mobile"], 224)
    assert (info["params"], info["mult_adds"]) == (5_289_978, 563_638_816)
