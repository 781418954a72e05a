"""Datasets for child training, registered by name: `load_dataset("digits")`.

Every loader returns the whole dataset as tensors, because proxy children are small and
short-lived: holding the images on the device and augmenting them there in batches
(`searchcore.train`) is several times faster than a per-image DataLoader. Images are
**uint8 NCHW** in 0..255 (a quarter of float32's memory, so CIFAR-10 fits on any GPU) and
labels int64; `mean`/`std` are per-channel statistics of the training split on the 0..1
scale, applied on the device after augmentation.

Splits are fixed (seed 0, stratified) whatever the trial's seed, so every trial of every
search is scored on the same validation images and rewards stay comparable.

Importing this module does not import torch (the loaders do), so the web process can list
the datasets, their summaries and options from `DATASETS`.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from searchcore.errors import ConfigError, DatasetNotFoundError, SearchcoreError
from searchcore.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

#: The seed of every held-out split; fixed so rewards stay comparable across trials.
SPLIT_SEED = 0


class DatasetFormatError(SearchcoreError, ValueError):
    """A dataset's files exist but do not hold what the format promises."""


@dataclass
class DatasetSplits:
    """A dataset held in memory: uint8 NCHW images and int64 labels per split.

    `val` is what a child's reward is measured on; `test` (None when the dataset has none)
    is kept out of the search and only scored when asked for. `horizontal_flip` says whether
    mirroring keeps an image's label (natural photos: yes; digits: no).
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    horizontal_flip: bool = True

    def __post_init__(self) -> None:
        import torch

        expected = (self.in_channels, self.image_size, self.image_size)
        for split, pair in (("train", self.train), ("val", self.val), ("test", self.test)):
            if pair is None:
                continue
            images, labels = pair
            if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != expected:
                raise DatasetFormatError(
                    f"{self.name}: {split} images must be uint8 of shape (N, {', '.join(map(str, expected))}), "
                    f"got {images.dtype} {tuple(images.shape)}"
                )
            if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
                raise DatasetFormatError(f"{self.name}: {split} labels must be int64 of shape ({images.shape[0]},)")
            if not len(labels):
                raise DatasetFormatError(f"{self.name}: the {split} split holds no images")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise DatasetFormatError(f"{self.name}: mean and std need one value per channel ({self.in_channels})")


@dataclass(frozen=True)
class DatasetLoader:
    """A registered loader and what a user (or the web form) needs to know to call it."""

    name: str
    summary: str
    needs_root: bool
    load: Callable[..., DatasetSplits]

    def options(self) -> dict[str, Any]:
        """The loader's keyword options and their defaults."""
        params = inspect.signature(self.load).parameters
        return {n: p.default for n, p in params.items() if n != "root"}

    def __call__(self, root: str | Path | None = None, **options: Any) -> DatasetSplits:
        known = self.options()
        for key in options:
            if key not in known:
                raise ConfigError(f"{self.name}: unknown option {key!r}; options: {', '.join(known) or 'none'}")
        if self.needs_root and root is None:
            raise ConfigError(f"{self.name}: needs a data root (the folder holding its files)")
        if not self.needs_root and root is not None:
            raise ConfigError(f"{self.name}: takes no data root, it needs no files (got {str(root)!r})")
        return self.load(Path(root).expanduser(), **options) if self.needs_root else self.load(**options)


DATASETS: Registry[DatasetLoader] = Registry("dataset")


def register_dataset(name: str, summary: str, *, needs_root: bool) -> Callable:
    """Decorator: register `load(root, **options)` (or `load(**options)`) under `name`."""

    def add(load: Callable[..., DatasetSplits]) -> Callable[..., DatasetSplits]:
        DATASETS.register(name, DatasetLoader(name, summary, needs_root, load))
        return load

    return add


def load_dataset(name: str, root: str | Path | None = None, **options: Any) -> DatasetSplits:
    """Load a registered dataset; unknown names and options raise naming what exists."""
    return DATASETS.get(name)(root, **options)


# -- shared helpers ---------------------------------------------------------------------------


def stratified_holdout(labels: np.ndarray, size: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), holding out `size` items in proportion to each class.

    Each class's members are shuffled and given evenly spaced ranks in [0, 1); holding out
    the lowest-ranked `size` items interleaves the classes, so any size (even smaller than
    the number of classes) comes out as balanced as it can be.
    """
    if not 0 < size < len(labels):
        raise ConfigError(f"held-out split of {size} must be between 1 and {len(labels) - 1} images")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    rank = np.empty(len(labels))
    for cls in np.unique(labels):
        members = order[labels[order] == cls]
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    by_rank = order[np.argsort(rank[order], kind="stable")]
    return np.sort(by_rank[size:]), np.sort(by_rank[:size])


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std on the 0..1 scale, from 256-bin histograms.

    Histograms need no float copy of the images, which for CIFAR-10 would be 1.1 GB.
    """
    import torch

    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        p = counts / counts.sum()
        mean = float((p * values).sum())
        means.append(mean)
        stds.append(max(float((p * (values - mean) ** 2).sum()) ** 0.5, 1e-3))
    return tuple(means), tuple(stds)


def _pair(images: Tensor | np.ndarray, labels: np.ndarray | Tensor, index: np.ndarray | None = None):
    import torch

    images = torch.as_tensor(images)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if index is not None:
        index = torch.as_tensor(index)
        images, labels = images[index], labels[index]
    return images.contiguous(), labels.contiguous()


def _check_positive(dataset: str, **values: int) -> None:
    for field, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{dataset}: {field} must be a positive integer, got {value!r}")


# -- digits -----------------------------------------------------------------------------------

DIGITS_VAL_SIZE = 300
DIGITS_TEST_SIZE = 300


@register_dataset(
    "digits",
    "scikit-learn's 1,797 real 8x8 handwritten digits, upsampled; ships with the package (no download)",
    needs_root=False,
)
def load_digits(image_size: int = 16) -> DatasetSplits:
    """1,197 train / 300 validation / 300 test images, stratified, always the same split."""
    import torch
    from sklearn.datasets import load_digits as sklearn_digits

    _check_positive("digits", image_size=image_size)
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


@register_dataset(
    "cifar10",
    "CIFAR-10 from the python batches torchvision downloads (cifar-10-batches-py/); 5,000 held out",
    needs_root=True,
)
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
    _check_positive("cifar10", val_size=val_size)
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


def _read_image_folder(folder: Path, image_size: int, in_channels: int) -> tuple[list[str], Tensor, Tensor]:
    """Every image under `folder/<class>/`, resized (short side) and centre-cropped."""
    import torch
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


@register_dataset(
    "imagefolder",
    "your own images: root/train/<class>/*.png|jpg and root/val/<class>/... (root/test/ optional)",
    needs_root=True,
)
def load_imagefolder(
    root: Path, image_size: int = 32, in_channels: int = 3, horizontal_flip: bool = True
) -> DatasetSplits:
    """Images in torchvision ImageFolder layout; `val/` scores the reward, `test/` is optional.

    Every image is resized so its short side is `image_size`, centre-cropped square and
    held in memory, so this suits the small sets a proxy search trains on. Set
    `horizontal_flip` False when a mirror image would change the class (text, digits).
    """
    _check_positive("imagefolder", image_size=image_size)
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
    mean, std = channel_stats(splits["train"][0])
    return DatasetSplits(
        name="imagefolder", num_classes=len(classes), in_channels=in_channels, image_size=image_size,
        train=splits["train"], val=splits["val"], test=splits.get("test"),
        mean=mean, std=std, horizontal_flip=horizontal_flip,
    )


# -- synthetic --------------------------------------------------------------------------------


@register_dataset(
    "synthetic",
    "uniform noise images with random labels, any shape: for timing only (accuracy stays at chance)",
    needs_root=False,
)
def load_synthetic(
    num_samples: int = 1024,
    val_samples: int = 256,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
    seed: int = 0,
) -> DatasetSplits:
    """Random uint8 images and labels drawn from `seed`; no test split."""
    import torch

    _check_positive(
        "synthetic", num_samples=num_samples, val_samples=val_samples, image_size=image_size,
        in_channels=in_channels, num_classes=num_classes,
    )
    if num_classes < 2:
        raise ConfigError(f"synthetic: num_classes must be at least 2, got {num_classes}")
    generator = torch.Generator().manual_seed(seed)
    shape = (in_channels, image_size, image_size)

    def split(n: int) -> tuple[Tensor, Tensor]:
        images = torch.randint(0, 256, (n, *shape), generator=generator, dtype=torch.uint8)
        return images, torch.randint(0, num_classes, (n,), generator=generator)

    train = split(num_samples)
    mean, std = channel_stats(train[0])
    return DatasetSplits(
        name="synthetic", num_classes=num_classes, in_channels=in_channels, image_size=image_size,
        train=train, val=split(val_samples), test=None, mean=mean, std=std, horizontal_flip=True,
    )
