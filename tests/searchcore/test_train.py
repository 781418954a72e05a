"""Proxy training of child networks: real (tiny) trainings on the digits dataset."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from searchcore.data import DatasetSplits, load_dataset
from searchcore.errors import ConfigError, DatasetNotFoundError
from searchcore.known import get_known
from searchcore.profile import count_params
from searchcore.spaces import NasnetCellSpace
from searchcore.train import (
    REWARDS,
    ChildTrainer,
    DeviceAugment,
    ProxyConfig,
    TrainingDivergedError,
    build_child,
    cutout,
    proxy_dataset,
    random_crop,
    random_flip,
    resolve_device,
    train_child,
)

#: The smallest proxy: 1@48 (N = 1 normal cell per stack, base filters 48 / 24 = 2) on the CPU.
TINY = ProxyConfig(cells=1, filters=48, epochs=1, batch_size=32, lr=0.05, device="cpu")


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def few_digits(digits) -> DatasetSplits:
    """256 training and 64 validation digits: enough to exercise a run in a second or two."""
    return dataclasses.replace(
        digits, train=tuple(t[:256] for t in digits.train), val=tuple(t[:64] for t in digits.val)
    )


def random_genotype(seed: int = 0):
    return NasnetCellSpace().sample(np.random.default_rng(seed))


# -- a real proxy training ----------------------------------------------------------------------


def test_nasnet_a_proxy_training_on_digits_beats_chance(digits):
    config = dataclasses.replace(TINY, epochs=2, lr=0.1)
    started = time.perf_counter()
    result = train_child(get_known("nasnet-a"), config, data=digits)
    assert time.perf_counter() - started < 60
    # Chance is 10%; two epochs of a 1@48 NASNet-A (8.5k parameters) reach 80%.
    assert result.val_acc > 0.5
    assert result.reward == result.val_acc == result.epochs[-1].val_acc
    assert result.best_val_acc == max(m.val_acc for m in result.epochs)
    assert [m.epoch for m in result.epochs] == [1, 2] and not result.stopped
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    lrs = [m.lr for m in result.epochs]
    assert lrs[0] == config.lr and lrs == sorted(lrs, reverse=True)  # cosine decay
    assert all(m.images_per_second > 0 and m.seconds > 0 for m in result.epochs)
    assert result.params == count_params(build_child(get_known("nasnet-a"), config, digits))
    assert result.mult_adds > result.params > 0
    assert result.test_acc is None


def test_test_split_is_scored_only_when_asked(few_digits):
    result = train_child(random_genotype(), TINY, data=few_digits, evaluate_test=True)
    assert 0 <= result.test_acc <= 1


def test_same_seed_same_run_on_cpu(few_digits):
    genotype = random_genotype(1)
    first = train_child(genotype, TINY, data=few_digits)
    again = train_child(genotype, TINY, data=few_digits)
    other = train_child(genotype, dataclasses.replace(TINY, seed=1), data=few_digits)
    assert first.reward == again.reward
    assert first.epochs[0].train_loss == again.epochs[0].train_loss
    assert first.epochs[0].train_loss != other.epochs[0].train_loss


def test_training_leaves_the_callers_rng_alone(few_digits):
    torch.manual_seed(42)
    before = torch.get_rng_state()
    train_child(random_genotype(), TINY, data=few_digits)
    assert torch.equal(torch.get_rng_state(), before)


def test_on_epoch_false_stops_the_run(few_digits):
    seen = []

    def stop_after_two(metrics):
        seen.append(metrics.epoch)
        return metrics.epoch < 2 and None  # None goes on, False stops

    config = dataclasses.replace(TINY, epochs=4, reward="nas_v1")
    result = train_child(get_known("nasnet-a"), config, data=few_digits, on_epoch=stop_after_two)
    assert seen == [1, 2] and result.stopped and len(result.epochs) == 2
    assert result.reward == pytest.approx(max(m.val_acc for m in result.epochs) ** 3)


def test_checkpoint_loads_with_weights_only_into_a_fresh_model(few_digits, tmp_path):
    saved = []
    genotype = get_known("nasnet-a")
    result = train_child(genotype, TINY, data=few_digits, checkpoint_sink=saved.append)
    torch.save(saved[0], tmp_path / "child.pt")
    checkpoint = torch.load(tmp_path / "child.pt", weights_only=True)
    assert checkpoint["genotype"] == genotype.to_dict() and checkpoint["epoch"] == 1
    config = ProxyConfig.from_dict(checkpoint["config"])
    assert config == TINY and checkpoint["metrics"][0]["val_acc"] == result.val_acc

    model = build_child(genotype, config, few_digits)
    model.load_state_dict(checkpoint["model"])
    trainer = ChildTrainer(model, config, total_steps=1, device=torch.device("cpu"))
    augment = DeviceAugment(few_digits, config, torch.Generator().manual_seed(0))
    _, val_acc = trainer.evaluate(*few_digits.val, augment)
    assert val_acc == result.val_acc


def test_auxiliary_head_and_drop_path_train(few_digits):
    config = dataclasses.replace(TINY, auxiliary_weight=0.4, drop_path_keep=0.6, cutout=8, nesterov=True)
    result = train_child(get_known("nasnet-a"), config, data=few_digits)
    plain = train_child(get_known("nasnet-a"), TINY, data=few_digits)
    assert result.params == plain.params  # the auxiliary head is not counted, as in the paper
    assert np.isfinite(result.epochs[0].train_loss) and result.epochs[0].train_loss != plain.epochs[0].train_loss


def test_divergence_raises(few_digits):
    config = dataclasses.replace(TINY, lr=1e12, grad_clip=0.0, weight_decay=0.0)
    with pytest.raises(TrainingDivergedError, match="child training diverged: the loss became (nan|inf) in epoch 1"):
        train_child(get_known("nasnet-a"), config, data=few_digits)


def test_loads_the_configured_dataset_once(tmp_path):
    config = dataclasses.replace(TINY, dataset="synthetic", batch_size=16,
                                 dataset_options={"num_samples": 32, "val_samples": 8, "image_size": 8})
    assert proxy_dataset(config) is proxy_dataset(dataclasses.replace(config, epochs=5))
    assert proxy_dataset(config).train[0].shape == (32, 3, 8, 8)
    result = train_child(get_known("nasnet-a"), config)
    assert result.epochs[0].epoch == 1 and 0 <= result.val_acc <= 1
    missing = dataclasses.replace(TINY, dataset="cifar10", data_root=str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="cifar10: no CIFAR-10 batches under"):
        train_child(get_known("nasnet-a"), missing)


# -- rewards ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REWARDS.names())
def test_every_reward_stays_in_unit_range(name):
    reward = REWARDS.get(name)
    assert 0 <= reward([0.1, 0.95, 0.3]) <= 1 and reward([0.0]) == 0


def test_reward_definitions():
    accs = [0.1, 0.2, 0.9, 0.3, 0.4, 0.5, 0.6]
    assert REWARDS.get("val_acc")(accs) == 0.6  # NASNet: after the last epoch
    assert REWARDS.get("nas_v1")(accs) == pytest.approx(0.9**3)  # NAS v1: max of the last 5, cubed
    assert REWARDS.get("nas_v1")(accs[:2] + accs[3:]) == pytest.approx(0.6**3)


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("cells", 0), ("filters", 0), ("filters", 50), ("epochs", 0), ("batch_size", 1), ("lr", 0.0),
        ("momentum", 1.0), ("weight_decay", -1e-4), ("grad_clip", -1.0), ("drop_path_keep", 0.0),
        ("auxiliary_weight", -0.4), ("cutout", -1), ("reward", "loss"), ("seed", -1), ("device", "gpu0"), ("device", "meta"),
        ("dataset", "mnist"), ("epochs", 2.5), ("epochs", "3"), ("augment", "yes"), ("augment", 1), ("lr", True),
        ("base_filters", 1), ("base_filters", 169), ("base_filters", "4"), ("base_filters", True), ("filters", 4.0),
    ],
)
def test_proxy_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field) as raised:
        ProxyConfig(**{field: value})
    assert raised.value.field == field  # the web app points at the form field with it


def test_proxy_config_dict_round_trip_and_unknown_keys():
    config = ProxyConfig(dataset="cifar10", data_root="/data", dataset_options={"val_size": 5000}, cells=2,
                         filters=96, epochs=20, cutout=16, reward="nas_v1")
    assert ProxyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert ProxyConfig.from_dict({"epochs": 3}) == ProxyConfig(epochs=3)
    with pytest.raises(ConfigError, match="unknown key 'epoch'") as raised:
        ProxyConfig.from_dict({"epoch": 3})
    assert raised.value.field == "epoch"
    with pytest.raises(ConfigError, match="digits has no option 'val_size'"):
        ProxyConfig(dataset_options={"val_size": 10})


def test_proxy_width_is_filters_or_base_filters_and_fixes_the_base_for_every_cell():
    nasnet_a, darts_v2 = get_known("nasnet-a"), get_known("darts-v2")
    by_f, by_base = ProxyConfig(filters=96), ProxyConfig(base_filters=4)
    assert ProxyConfig() == by_f and by_f.fixed_base_filters == by_base.fixed_base_filters == 4
    # Every cell gets the base; F follows what its normal cell concatenates (6 states, 4 states).
    for config in (by_f, by_base):
        assert (config.network_widths(nasnet_a).filters, config.network_widths(darts_v2).filters) == (96, 64)
    # A config without base_filters keeps the dict it had before the field existed (the web app's proxy key).
    assert set(by_f.to_dict()) == {f.name for f in dataclasses.fields(ProxyConfig)} - {"base_filters", "trainer"}
    assert by_base.to_dict()["base_filters"] == 4 and "filters" not in by_base.to_dict()
    assert ProxyConfig.from_dict(by_base.to_dict()) == by_base
    with pytest.raises(ConfigError, match=r"proxy config: base_filters \(4\) and filters \(96\) are both set"):
        ProxyConfig.from_dict({"filters": 96, "base_filters": 4})


def test_proxy_networks_of_equal_base_filters_are_equal(digits):
    genotype = random_genotype(3)
    by_f = build_child(genotype, dataclasses.replace(TINY, filters=48), digits)
    by_base = build_child(genotype, dataclasses.replace(TINY, filters=None, base_filters=2), digits)
    assert [p.shape for p in by_f.parameters()] == [p.shape for p in by_base.parameters()]
    assert by_f.base_filters == 2


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == torch.device("cuda:0")
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


# -- augmentation -------------------------------------------------------------------------------


def ramp_images(n: int = 64, channels: int = 3, size: int = 8) -> torch.Tensor:
    """Distinct, non-zero pixels, so every shift and mirror is visible."""
    return (torch.arange(n * channels * size * size) % 250 + 1).to(torch.uint8).view(n, channels, size, size)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    images = ramp_images()
    padding = 2
    out = random_crop(images, padding, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    offsets = set()
    for i in range(len(images)):
        matches = [(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
                   if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 10 and (padding, padding) in offsets  # varied, and the centre occurs


def test_random_flip_mirrors_about_half():
    images = ramp_images()
    out = random_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48


def test_cutout_zeroes_one_square_clipped_at_the_border():
    images = torch.ones(200, 2, 12, 12)
    out = cutout(images, 4, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    for image in out:
        zero_rows = torch.nonzero((image[0] == 0).any(1)).flatten()
        zero_cols = torch.nonzero((image[0] == 0).any(0)).flatten()
        box = image[:, zero_rows.min() : zero_rows.max() + 1, zero_cols.min() : zero_cols.max() + 1]
        assert (box == 0).all() and len(zero_rows) <= 4 and len(zero_cols) <= 4  # a rectangle, no more
        assert int((image == 0).sum()) == 2 * len(zero_rows) * len(zero_cols)  # same in every channel
    assert int((out[:, 0] == 0).sum((1, 2)).max()) == 16  # a whole 4 x 4 square inside


def test_device_augment_is_dataset_aware(digits):
    generator = torch.Generator().manual_seed(0)
    augment = DeviceAugment(digits, TINY, generator)
    assert augment.flip is False and augment.padding == 2  # 16 px digits: 2 px pad, never mirrored
    images = digits.train[0][:64]
    out = augment.train(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert not torch.equal(out, augment.normalize(images))
    normalized = augment.normalize(digits.train[0])
    assert abs(float(normalized.mean())) < 1e-3 and abs(float(normalized.std()) - 1) < 1e-2
    off = DeviceAugment(digits, dataclasses.replace(TINY, augment=False), generator)
    assert torch.equal(off.train(images), off.normalize(images))
    cifar_like = load_dataset("synthetic", num_samples=8, val_samples=2)
    assert DeviceAugment(cifar_like, TINY, generator).flip is True
    assert DeviceAugment(cifar_like, TINY, generator).padding == 4  # the paper's 40 -> 32 crop
