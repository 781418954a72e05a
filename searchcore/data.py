"""Datasets for child training, registered by name: `load_dataset("digits")`.

Every loader returns the whole dataset as tensors, because proxy children are small and
short-lived: holding the images on the device and augmenting them there in batches
(`searchcore.train`) is several times faster than a per-image DataLoader. Images are
**uint8 NCHW** in 0..255 (a quarter of float32's memory, so CIFAR-10 fits on any GPU) and
labels int64; `mean`/`std` are per-channel statistics of the training split on the 0..1
scale, applied on the device after augmentation.

Splits are fixed (seed 0, stratified) whatever the trial's seed, so every trial of every
search is scored on the same validation images and rewards stay comparable.

This module is torch-free, so the web process can list the datasets, their summaries and
options from `DATASETS`: each entry names its loader by import path, and the loaders
(`searchcore.loaders`: torch, torchvision, scikit-learn, Pillow) load on the first
`load_dataset`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from searchcore.errors import ConfigError, DatasetNotFoundError, SearchcoreError
from searchcore.registry import Registry, import_target

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
        # The tensors' own methods and dtype names: this module does not import torch.
        expected = (self.in_channels, self.image_size, self.image_size)
        for split, pair in (("train", self.train), ("val", self.val), ("test", self.test)):
            if pair is None:
                continue
            images, labels = pair
            if str(images.dtype) != "torch.uint8" or images.dim() != 4 or tuple(images.shape[1:]) != expected:
                raise DatasetFormatError(
                    f"{self.name}: {split} images must be uint8 of shape (N, {', '.join(map(str, expected))}), "
                    f"got {images.dtype} {tuple(images.shape)}"
                )
            if str(labels.dtype) != "torch.int64" or labels.shape != (images.shape[0],):
                raise DatasetFormatError(f"{self.name}: {split} labels must be int64 of shape ({images.shape[0]},)")
            if not len(labels):
                raise DatasetFormatError(f"{self.name}: the {split} split holds no images")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise DatasetFormatError(f"{self.name}: mean and std need one value per channel ({self.in_channels})")


@dataclass(frozen=True)
class DatasetLoader:
    """A registered loader and what a user (or the web form) needs to know to call it.

    `target` names the loader function (`"package.module:function"`), imported on the first
    call; `defaults` are its keyword options and their defaults, declared here so that listing
    them imports nothing, and checked against the function's signature when it loads.
    """

    name: str
    summary: str
    needs_root: bool
    target: str
    defaults: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The loader's keyword options and their defaults."""
        return dict(self.defaults)

    def load(self) -> Callable[..., DatasetSplits]:
        """The loader function, imported now (and torch with it)."""
        load: Callable[..., DatasetSplits] = import_target(self.target)
        params = inspect.signature(load).parameters
        actual = {n: p.default for n, p in params.items() if n != "root"}
        if actual != self.defaults:
            raise SearchcoreError(f"{self.name}: registered with options {self.defaults}, but {self.target} takes {actual}")
        return load

    def __call__(self, root: str | Path | None = None, **options: Any) -> DatasetSplits:
        known = self.options()
        for key in options:
            if key not in known:
                raise ConfigError(f"{self.name}: unknown option {key!r}; options: {', '.join(known) or 'none'}")
        if self.needs_root and root is None:
            raise ConfigError(f"{self.name}: needs a data root (the folder holding its files)")
        if not self.needs_root and root is not None:
            raise ConfigError(f"{self.name}: takes no data root, it needs no files (got {str(root)!r})")
        load = self.load()
        return load(**options) if root is None else load(Path(root).expanduser(), **options)


DATASETS: Registry[DatasetLoader] = Registry("dataset")


def register_dataset(name: str, summary: str, *, needs_root: bool, target: str, **defaults: Any) -> None:
    """Register the loader `target` names: `load(root, **options)` when it `needs_root`, else
    `load(**options)`; `defaults` are its keyword options and their defaults."""
    DATASETS.register(name, DatasetLoader(name, summary, needs_root, target, defaults))


def load_dataset(name: str, root: str | Path | None = None, **options: Any) -> DatasetSplits:
    """Load a registered dataset; unknown names and options raise naming what exists."""
    return DATASETS.get(name)(root, **options)


register_dataset(
    "digits",
    "scikit-learn's 1,797 real 8x8 handwritten digits, upsampled; ships with the package (no download)",
    needs_root=False, target="searchcore.loaders:load_digits", image_size=16,
)
register_dataset(
    "cifar10",
    "CIFAR-10 from the python batches torchvision downloads (cifar-10-batches-py/); 5,000 held out",
    needs_root=True, target="searchcore.loaders:load_cifar10", val_size=None,
)
register_dataset(
    "imagefolder",
    "your own images: root/train/<class>/*.png|jpg and root/val/<class>/... (root/test/ optional)",
    needs_root=True, target="searchcore.loaders:load_imagefolder", image_size=32, in_channels=3, horizontal_flip=True,
)
register_dataset(
    "synthetic",
    "uniform noise images with random labels, any shape: for timing only (accuracy stays at chance)",
    needs_root=False, target="searchcore.loaders:load_synthetic",
    num_samples=1024, val_samples=256, image_size=32, in_channels=3, num_classes=10, seed=0,
)


# -- checking a data root without loading it -------------------------------------------------

#: The files the cifar10 and imagefolder loaders read (searchcore.loaders), named here so the
#: web process can check a root before anything is queued.
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
IMAGEFOLDER_REQUIRED_SPLITS = ("train", "val")


def check_dataset_root(name: str, root: str | Path | None) -> None:
    """Raise DatasetNotFoundError naming what `name` would miss under `root`, without loading
    anything: a root-less dataset given a root, or a rooted one given none, is a ConfigError."""
    loader = DATASETS.get(name)
    if not loader.needs_root:
        if root is not None:
            raise ConfigError(f"{name}: takes no data root, it needs no files (got {str(root)!r})", field="data_root")
        return
    if root is None:
        raise ConfigError(f"{name}: needs a data root (the folder holding its files)", field="data_root")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{name}: the data root {folder} is not a folder")
    if name == "cifar10":
        batches = folder / CIFAR_FOLDER if (folder / CIFAR_FOLDER).is_dir() else folder
        missing = [file for file in CIFAR_FILES if not (batches / file).is_file()]
        if missing:
            raise DatasetNotFoundError(f"cifar10: {batches} lacks {', '.join(missing)} (the {CIFAR_FOLDER}/ "
                                       "batches as torchvision writes them)")
    elif name == "imagefolder":
        missing = [f"{split}/" for split in IMAGEFOLDER_REQUIRED_SPLITS if not (folder / split).is_dir()]
        if missing:
            raise DatasetNotFoundError(f"imagefolder: {folder} lacks {' and '.join(missing)} "
                                       "(expected root/train/<class>/*.png and root/val/<class>/*.png)")


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

    Histograms need no float copy of the images, which for CIFAR-10 would be 1.1 GB. Only the
    tensor's own methods: this module does not import torch.
    """
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = images[:, c].reshape(-1).bincount(minlength=256).double()
        values = counts.new_tensor(list(range(256))) / 255
        p = counts / counts.sum()
        mean = float((p * values).sum())
        means.append(mean)
        stds.append(max(float((p * (values - mean) ** 2).sum()) ** 0.5, 1e-3))
    return tuple(means), tuple(stds)


def check_positive(dataset: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{dataset}: {name} must be a positive integer, got {value!r}")
