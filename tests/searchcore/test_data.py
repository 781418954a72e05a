"""Dataset loaders, read from small files written in each format's exact on-disk layout."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from searchcore.data import (
    DATASETS,
    DatasetFormatError,
    DatasetSplits,
    channel_stats,
    load_dataset,
    stratified_holdout,
)
from searchcore.errors import ConfigError, DatasetNotFoundError, UnknownNameError

CIFAR_PER_BATCH = 12
CIFAR_TEST = 10


# -- fixtures in the real formats ---------------------------------------------------------------


def write_cifar10(root: Path, per_batch: int = CIFAR_PER_BATCH, seed: int = 0) -> Path:
    """CIFAR-10's python batches as torchvision's download unpacks them, `per_batch` images each."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    for name in names:
        n = CIFAR_TEST if name == "test_batch" else per_batch
        batch = {
            "batch_label": f"{name} of 5",
            "labels": [int(x) for x in rng.integers(0, 10, n)],
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "filenames": [f"img_{i}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f)
    return root


CLASS_COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}


def write_imagefolder(root: Path, per_class: dict[str, int] | None = None, classes=CLASS_COLOURS) -> Path:
    """root/<split>/<class>/*.png|jpg, non-square images of one colour per class."""
    per_class = per_class or {"train": 3, "val": 2}
    for split, n in per_class.items():
        for name, colour in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                suffix = "jpg" if i % 2 else "png"
                Image.new("RGB", (24, 18), colour).save(folder / f"{i}.{suffix}")
    return root


ROOT_FIXTURES = {"cifar10": write_cifar10, "imagefolder": write_imagefolder}


# -- every registered dataset -------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_loads(name, tmp_path):
    loader = DATASETS.get(name)
    if loader.needs_root:
        if name not in ROOT_FIXTURES:
            pytest.fail(f"dataset {name!r} reads files: add a writer for its format to ROOT_FIXTURES")
        splits = load_dataset(name, ROOT_FIXTURES[name](tmp_path))
    else:
        splits = load_dataset(name)
    assert isinstance(splits, DatasetSplits) and splits.name == name
    assert loader.summary
    for pair in (splits.train, splits.val) + ((splits.test,) if splits.test is not None else ()):
        images, labels = pair
        assert images.dtype == torch.uint8 and images.shape[1:] == (splits.in_channels, splits.image_size, splits.image_size)
        assert labels.dtype == torch.int64 and len(labels) == len(images) > 0
        assert 0 <= labels.min() and labels.max() < splits.num_classes
    assert len(splits.mean) == len(splits.std) == splits.in_channels
    assert all(0 < s < 1 for s in splits.std) and all(0 <= m <= 1 for m in splits.mean)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_rejects_an_unknown_option(name, tmp_path):
    root = tmp_path if DATASETS.get(name).needs_root else None
    with pytest.raises(ConfigError, match=f"{name}: unknown option 'colour'"):
        load_dataset(name, root, colour="blue")


def test_the_registry_loads_without_torch():
    """The web process lists datasets and their options without importing torch."""
    code = "import sys, searchcore.data as d; assert d.DATASETS.names() and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="cifar10, digits, imagefolder, synthetic"):
        load_dataset("mnist")


def test_root_is_required_exactly_where_files_are_read(tmp_path):
    with pytest.raises(ConfigError, match="cifar10: needs a data root"):
        load_dataset("cifar10")
    with pytest.raises(ConfigError, match="digits: takes no data root"):
        load_dataset("digits", tmp_path)


# -- digits -------------------------------------------------------------------------------------


def test_digits_fixed_stratified_splits():
    np.random.seed(123)
    torch.manual_seed(123)  # the global seeds must not matter
    splits = load_dataset("digits")
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 1, 16)
    assert [len(p[1]) for p in (splits.train, splits.val, splits.test)] == [1197, 300, 300]
    for labels in (splits.val[1], splits.test[1]):
        counts = torch.bincount(labels, minlength=10)
        assert counts.min() >= 29 and counts.max() <= 31  # 30 per class, ±1
    assert splits.horizontal_flip is False  # a mirrored 2 is not a 2

    np.random.seed(7)
    torch.manual_seed(7)
    again = load_dataset("digits")
    for a, b in zip((splits.train, splits.val, splits.test), (again.train, again.val, again.test)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_digits_keeps_the_real_pixels():
    from sklearn.datasets import load_digits as sklearn_digits

    native = load_dataset("digits", image_size=8)
    all_labels = torch.cat([native.train[1], native.val[1], native.test[1]])
    assert torch.equal(torch.bincount(all_labels), torch.as_tensor(np.bincount(sklearn_digits().target)))
    all_images = torch.cat([native.train[0], native.val[0], native.test[0]]).reshape(1797, 64).to(torch.int64)
    expected = torch.as_tensor(np.round(sklearn_digits().data * 255 / 16)).to(torch.int64)
    # The same 1,797 images, reordered by the split: compare as sorted multisets of rows.
    assert sorted(map(tuple, all_images.tolist())) == sorted(map(tuple, expected.tolist()))


def test_digits_upsamples_to_the_asked_size():
    assert load_dataset("digits", image_size=32).train[0].shape == (1197, 1, 32, 32)
    with pytest.raises(ConfigError, match="digits: image_size must be at least the native 8"):
        load_dataset("digits", image_size=4)


# -- CIFAR-10 -----------------------------------------------------------------------------------


def test_cifar10_reads_torchvision_batches(tmp_path):
    write_cifar10(tmp_path)
    splits = load_dataset("cifar10", tmp_path)
    total = 5 * CIFAR_PER_BATCH
    assert len(splits.val[1]) == total // 10  # a tenth, as 5,000 of 50,000 in the paper
    assert len(splits.train[1]) == total - total // 10
    assert len(splits.test[1]) == CIFAR_TEST
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 3, 32)

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f)
    first = torch.as_tensor(raw["data"][0])
    image = splits.test[0][0]
    assert torch.equal(image[0].reshape(-1), first[:1024])  # red plane first, row-major
    assert torch.equal(image[2].reshape(-1), first[2048:])
    assert splits.test[1].tolist() == raw["labels"]


def test_cifar10_accepts_the_batches_folder_itself_and_a_val_size(tmp_path):
    write_cifar10(tmp_path)
    splits = load_dataset("cifar10", tmp_path / "cifar-10-batches-py", val_size=20)
    assert len(splits.val[1]) == 20 and len(splits.train[1]) == 5 * CIFAR_PER_BATCH - 20
    with pytest.raises(ConfigError, match="held-out split of 60"):
        load_dataset("cifar10", tmp_path, val_size=60)


def test_cifar10_missing_batches(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("cifar10", tmp_path)
    assert str(error.value) == (
        f"cifar10: no CIFAR-10 batches under {tmp_path} "
        "(expected cifar-10-batches-py/data_batch_1 ... as torchvision writes them)"
    )
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_4 is missing"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_malformed_batches(tmp_path):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(b"not a pickle")
    with pytest.raises(DatasetFormatError, match="data_batch_2 is not a CIFAR-10 batch pickle"):
        load_dataset("cifar10", tmp_path)
    with open(batch, "wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}, f)
    with pytest.raises(DatasetFormatError, match=r"data_batch_2 data has shape \(4, 100\)"):
        load_dataset("cifar10", tmp_path)


# -- image folders ------------------------------------------------------------------------------


def test_imagefolder_loads_resized_images_with_their_classes(tmp_path):
    write_imagefolder(tmp_path, {"train": 3, "val": 2, "test": 1})
    splits = load_dataset("imagefolder", tmp_path, image_size=8)
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (3, 3, 8)
    assert splits.train[0].shape == (9, 3, 8, 8) and len(splits.val[1]) == 6 and len(splits.test[1]) == 3
    for images, labels in (splits.train, splits.val, splits.test):
        for image, label in zip(images, labels):
            colour = torch.tensor(list(CLASS_COLOURS.values())[label])  # classes sort: cat, dog, fox
            assert (image.double().mean(dim=(1, 2)) - colour).abs().max() <= 3  # JPEG rounding


def test_imagefolder_grey(tmp_path):
    write_imagefolder(tmp_path)
    splits = load_dataset("imagefolder", tmp_path, image_size=8, in_channels=1, horizontal_flip=False)
    assert splits.train[0].shape == (9, 1, 8, 8) and splits.test is None
    assert splits.horizontal_flip is False


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="imagefolder: no train/ folder under"):
        load_dataset("imagefolder", tmp_path)
    write_imagefolder(tmp_path, {"train": 2})
    with pytest.raises(DatasetNotFoundError, match="imagefolder: no val/ folder under"):
        load_dataset("imagefolder", tmp_path)
    write_imagefolder(tmp_path, {"val": 1}, classes={"cat": (0, 0, 0), "owl": (1, 1, 1)})
    with pytest.raises(DatasetFormatError, match=r"val/ classes differ from train/: missing \['dog', 'fox'\], extra \['owl'\]"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(ConfigError, match="in_channels must be 1"):
        load_dataset("imagefolder", tmp_path, in_channels=4)


def test_imagefolder_unreadable_image(tmp_path):
    write_imagefolder(tmp_path)
    (tmp_path / "train" / "cat" / "0.png").write_bytes(b"no image here")
    with pytest.raises(DatasetFormatError, match="cannot read .*0.png"):
        load_dataset("imagefolder", tmp_path)


# -- synthetic ----------------------------------------------------------------------------------


def test_synthetic_shapes_and_seed():
    splits = load_dataset("synthetic", num_samples=40, val_samples=8, image_size=12, in_channels=2, num_classes=4)
    assert splits.train[0].shape == (40, 2, 12, 12) and splits.val[0].shape == (8, 2, 12, 12)
    assert splits.train[1].max() < 4 and splits.test is None
    again = load_dataset("synthetic", num_samples=40, val_samples=8, image_size=12, in_channels=2, num_classes=4)
    other = load_dataset("synthetic", num_samples=40, val_samples=8, image_size=12, in_channels=2, num_classes=4, seed=1)
    assert torch.equal(splits.train[0], again.train[0])
    assert not torch.equal(splits.train[0], other.train[0])
    with pytest.raises(ConfigError, match="synthetic: num_samples must be a positive integer"):
        load_dataset("synthetic", num_samples=0)


# -- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 10, 47])
def test_stratified_holdout_partitions_in_proportion(size):
    labels = np.repeat(np.arange(5), [10, 10, 10, 10, 20])
    kept, held = stratified_holdout(labels, size)
    assert len(held) == size and len(kept) == len(labels) - size
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(labels)))
    counts = np.bincount(labels[held], minlength=5)
    expected = size * np.bincount(labels) / len(labels)
    assert np.all(np.abs(counts - expected) <= 1)


def test_channel_stats_match_a_float_computation():
    images = torch.randint(0, 256, (50, 3, 7, 7), dtype=torch.uint8)
    mean, std = channel_stats(images)
    as_float = images.double() / 255
    assert np.allclose(mean, as_float.mean(dim=(0, 2, 3)).tolist())
    assert np.allclose(std, as_float.std(dim=(0, 2, 3), unbiased=False).tolist())


def test_splits_reject_float_or_empty_images():
    labels = torch.zeros(4, dtype=torch.int64)
    images = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(DatasetFormatError, match="train images must be uint8"):
        DatasetSplits(name="mine", num_classes=2, in_channels=1, image_size=4, train=(images.float(), labels),
                      val=(images, labels), test=None, mean=(0.5,), std=(0.2,))
    with pytest.raises(DatasetFormatError, match="the val split holds no images"):
        DatasetSplits(name="mine", num_classes=2, in_channels=1, image_size=4, train=(images, labels),
                      val=(images[:0], labels[:0]), test=None, mean=(0.5,), std=(0.2,))
