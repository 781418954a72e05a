"""The dataset loaders `searchcore.data` registers by import path: torch, torchvision,
scikit-learn and Pillow load with this module, which only a process that trains imports
(through `load_dataset`).

Each returns the whole dataset as uint8 NCHW tensors (`DatasetSplits`); `searchcore.data`
declares each one's options and defaults, and checks them against the signature here.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from searchcore.data import (
    DatasetFormatError,
    DatasetSplits,
    channel_stats,
    check_positive,
    stratified_holdout,
)
from searchcore.errors import ConfigError, DatasetNotFoundError


def _pair(images: torch.Tensor | np.ndarray, labels: np.ndarray | torch.Tensor, index: np.ndarray | None = None):
    images = torch.as_tensor(images)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if index is not None:
        rows = torch.as_tensor(index)
        images, labels = images[rows], labels[rows]
    return images.contiguous(), labels.contiguous()


# -- digits -----------------------------------------------------------------------------------

DIGITS_VAL_SIZE = 300
DIGITS_TEST_SIZE = 300


def load_digits(image_size: int = 16) -> DatasetSplits:
    """1,197 train / 300 validation / 300 test images, stratified, always the same split."""
    from sklearn.datasets import load_digits as sklearn_digits

    check_positive("digits", image_size=image_size)
    if image_size < 8:
        raise ConfigError(f"digits: image_size must be at least the native 8, got {image_size}")
    bunch = sklearn_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    if image_size != 8:
        pixels = torch.nn.functional.interpolate(pixels, size=image_size, mode="bilinear", align_corners=False)
    images = pixels.round().clamp(0, 255).to(torch.uint8)
    labels = np.asarray(bunch.target)
    rest, test = stratified_holdout(labels, DIGITS_TEST_SIZE)
    train_in_rest, val_in_rest = stratified_holdout(labels[rest], DIGITS_VAL_SIZE)
    train, val = rest[train_in_rest], rest[val_in_rest]
    train_pair = _pair(images, labels, train)
    mean, std = channel_stats(train_pair[0])
    return DatasetSplits(
        name="digits", num_classes=10, in_channels=1, image_size=image_size,
        train=train_pair, val=_pair(images, labels, val), test=_pair(images, labels, test),
        mean=mean, std=std, horizontal_flip=False,
    )


# -- CIFAR-10 ---------------------------------------------------------------------------------

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def _unpickle(path: Path) -> dict:
    """Read one CIFAR batch. These files are pickles, so only point this at files you trust."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DatasetFormatError(f"cifar10: {path} is not a CIFAR-10 batch pickle ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetFormatError(f"cifar10: {path} holds a {type(data).__name__}, expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise DatasetFormatError(f"cifar10: {path} lacks 'data' or 'labels'")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DatasetFormatError(f"cifar10: {path} data has shape {data.shape}, expected (N, 3072) with N labels")
    if labels.size and not (0 <= labels.min() and labels.max() < 10):
        raise DatasetFormatError(f"cifar10: {path} has labels outside 0..9")
    # Rows are 1,024 red, then green, then blue values: already channel-major.
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root: Path, val_size: int | None = None) -> DatasetSplits:
    """CIFAR-10 with `val_size` training images held out for the reward.

    `root` is the folder holding `cifar-10-batches-py/` (torchvision's `root`) or that folder
    itself. `val_size` defaults to a tenth of the training images: 5,000 of 50,000, the
    paper's held-out set (Appendix A.1).
    """
    folder = root / CIFAR_FOLDER if (root / CIFAR_FOLDER).is_dir() else root
    if not (folder / CIFAR_TRAIN_BATCHES[0]).is_file():
        raise DatasetNotFoundError(
            f"cifar10: no CIFAR-10 batches under {root} "
            f"(expected {CIFAR_FOLDER}/data_batch_1 ... as torchvision writes them)"
        )
    for file in (*CIFAR_TRAIN_BATCHES, "test_batch"):
        if not (folder / file).is_file():
            raise DatasetNotFoundError(f"cifar10: {folder / file} is missing; the CIFAR-10 batches are incomplete")
    parts = [_read_cifar_batch(folder / file) for file in CIFAR_TRAIN_BATCHES]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = _read_cifar_batch(folder / "test_batch")
    if val_size is None:
        val_size = max(1, len(labels) // 10)
    check_positive("cifar10", val_size=val_size)
    train, val = stratified_holdout(labels, val_size)
    train_pair = _pair(images, labels, train)
    mean, std = channel_stats(train_pair[0])
    return DatasetSplits(
        name="cifar10", num_classes=10, in_channels=3, image_size=32,
        train=train_pair, val=_pair(images, labels, val), test=_pair(test_images, test_labels),
        mean=mean, std=std, horizontal_flip=True,
    )


# -- image folders ----------------------------------------------------------------------------

IMAGEFOLDER_SPLITS = ("train", "val", "test")


def _read_image_folder(folder: Path, image_size: int, in_channels: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Every image under `folder/<class>/`, resized (short side) and centre-cropped."""
    from PIL import UnidentifiedImageError
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder))
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"imagefolder: {folder}: {exc}") from None
    steps = [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
    if in_channels == 1:
        steps.append(transforms.Grayscale(num_output_channels=1))
    steps.append(transforms.PILToTensor())
    transform = transforms.Compose(steps)
    images = []
    for path, _ in found.samples:
        try:
            images.append(transform(found.loader(path)))
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetFormatError(f"imagefolder: cannot read {path} ({exc})") from None
    labels = torch.tensor([label for _, label in found.samples], dtype=torch.int64)
    return found.classes, torch.stack(images), labels


def load_imagefolder(
    root: Path, image_size: int = 32, in_channels: int = 3, horizontal_flip: bool = True
) -> DatasetSplits:
    """Images in torchvision ImageFolder layout; `val/` scores the reward, `test/` is optional.

    Every image is resized so its short side is `image_size`, centre-cropped square and
    held in memory, so this suits the small sets a proxy search trains on. Set
    `horizontal_flip` False when a mirror image would change the class (text, digits).
    """
    check_positive("imagefolder", image_size=image_size)
    if in_channels not in (1, 3):
        raise ConfigError(f"imagefolder: in_channels must be 1 (grey) or 3 (RGB), got {in_channels}")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DatasetNotFoundError(
                f"imagefolder: no {split}/ folder under {root} "
                "(expected root/train/<class>/*.png and root/val/<class>/*.png)"
            )
    splits = {}
    classes = None
    for split in IMAGEFOLDER_SPLITS:
        if not (root / split).is_dir():
            continue
        split_classes, images, labels = _read_image_folder(root / split, image_size, in_channels)
        if classes is None:
            classes = split_classes
        elif split_classes != classes:
            missing = sorted(set(classes) - set(split_classes))
            extra = sorted(set(split_classes) - set(classes))
            raise DatasetFormatError(
                f"imagefolder: {split}/ classes differ from train/: "
                f"missing {missing or 'none'}, extra {extra or 'none'}"
            )
        splits[split] = (images, labels)
    assert classes is not None  # train/ exists, checked above
    mean, std = channel_stats(splits["train"][0])
    return DatasetSplits(
        name="imagefolder", num_classes=len(classes), in_channels=in_channels, image_size=image_size,
        train=splits["train"], val=splits["val"], test=splits.get("test"),
        mean=mean, std=std, horizontal_flip=horizontal_flip,
    )


# -- synthetic --------------------------------------------------------------------------------


def load_synthetic(
    num_samples: int = 1024,
    val_samples: int = 256,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
    seed: int = 0,
) -> DatasetSplits:
    """Random uint8 images and labels drawn from `seed`; no test split."""
    check_positive(
        "synthetic", num_samples=num_samples, val_samples=val_samples, image_size=image_size,
        in_channels=in_channels, num_classes=num_classes,
    )
    if num_classes < 2:
        raise ConfigError(f"synthetic: num_classes must be at least 2, got {num_classes}")
    generator = torch.Generator().manual_seed(seed)
    shape = (in_channels, image_size, image_size)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randint(0, 256, (n, *shape), generator=generator, dtype=torch.uint8)
        return images, torch.randint(0, num_classes, (n,), generator=generator)

    train = split(num_samples)
    mean, std = channel_stats(train[0])
    return DatasetSplits(
        name="synthetic", num_classes=num_classes, in_channels=in_channels, image_size=image_size,
        train=train, val=split(val_samples), test=None, mean=mean, std=std, horizontal_flip=True,
    )
