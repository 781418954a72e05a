"""The proxy-training config: how a child is trained for its reward.

Free of torch, so the web process validates a search's proxy settings without it; the
training itself is `searchcore.train`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from searchcore.data import DATASETS
from searchcore.errors import ConfigError
from searchcore.models.config import MIN_CELL_FILTERS, NetworkWidths, network_widths
from searchcore.registry import Registry
from searchcore.spaces.nasnet import Genotype

#: Seeds fit the database's integer columns and every RNG that takes them.
MAX_SEED = 2**31 - 1
#: Bounds past which a proxy stops being a proxy (the paper's largest network is 6@4032 at
#: 331 px); they keep one request from asking a worker for more memory than any GPU has.
MAX_FILTERS = 4032
MAX_IMAGE_SIZE = 512
#: A proxy's `filters` F is the width NASNet-A's Normal cell (6 states, F = 4 × 6 × base)
#: ends at, so it fixes base filters = F / 24; proxies have read F that way from the start.
FILTERS_PER_BASE_FILTER = 24
DEFAULT_FILTERS = 96
MAX_BASE_FILTERS = MAX_FILTERS // FILTERS_PER_BASE_FILTER
#: Inclusive bounds of the whole-number proxy settings, named once for `_check_ranges` and the
#: forms that show them up front (min/max on the web form's inputs).
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "cells": (1, 20),
    "filters": (FILTERS_PER_BASE_FILTER * MIN_CELL_FILTERS, MAX_FILTERS),
    "base_filters": (MIN_CELL_FILTERS, MAX_BASE_FILTERS),
    "epochs": (1, 10_000),
    "batch_size": (2, 65_536),
}


# -- rewards ------------------------------------------------------------------------------------

#: How a child's per-epoch validation accuracies become the reward a strategy is told.
REWARDS: Registry[Callable[[list[float]], float]] = Registry("reward")


@REWARDS.register("val_acc")
def final_val_acc(val_accs: list[float]) -> float:
    """NASNet (Zoph et al. 2018, A.3): the validation accuracy after the last epoch."""
    return val_accs[-1]


@REWARDS.register("nas_v1")
def nas_v1_reward(val_accs: list[float]) -> float:
    """NAS v1 (Zoph & Le 2017, §4.1): the best validation accuracy of the last 5 epochs, cubed."""
    return max(val_accs[-5:]) ** 3


# -- trainers ---------------------------------------------------------------------------------

#: What a trial's child process calls to turn a cell into a result (`ProxyConfig.trainer`), as
#: "module:function" targets with `searchcore.train.train_child`'s signature: the runner's
#: child imports them by name, so naming one here imports nothing.
TRAINERS: Registry[str] = Registry("trainer")
DEFAULT_TRAINER = "train"
TRAINERS.register(DEFAULT_TRAINER, "searchcore.train:train_child")
#: Returns at once: the machinery around training measured alone (bench/control_loop.py).
TRAINERS.register("noop", "searchcore.noop_trainer:train_nothing")


# -- configuration ------------------------------------------------------------------------------

#: The Python types a scalar field (annotated by name, as `from __future__ import annotations` keeps them) accepts;
#: a field annotated `T | None` takes None too.
_SCALAR_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def check_field_types(config: Any, what: str) -> None:
    """Configs arrive as JSON from files and web forms: reject "3" for 3 and true for 1.

    `config` is a dataclass whose scalar fields are annotated by name; `what` starts each
    message ("proxy config").
    """
    for f in fields(config):
        kind = f.type.removesuffix(" | None")
        allowed = _SCALAR_TYPES.get(kind)
        value = getattr(config, f.name)
        if allowed is None or (value is None and kind != f.type):
            continue
        if not isinstance(value, allowed) or isinstance(value, bool) != (kind == "bool"):
            or_null = " or null" if kind != f.type else ""
            raise ConfigError(f"{what}: {f.name} must be {kind}{or_null}, got {value!r}", field=f.name)
    if not isinstance(config.dataset_options, Mapping):
        raise ConfigError(f"{what}: dataset_options must be a mapping, got {config.dataset_options!r}",
                          field="dataset_options")


def check_dataset_choice(dataset: str, options: Mapping[str, Any], what: str) -> None:
    """A registered dataset, and only options it has, each of its default's type."""
    if dataset not in DATASETS:
        raise ConfigError(f"{what}: unknown dataset {dataset!r}; known: {', '.join(DATASETS)}", field="dataset")
    known_options = DATASETS.get(dataset).options()
    for key, value in options.items():
        if key not in known_options:
            raise ConfigError(
                f"{what}: dataset_options: {dataset} has no option {key!r}; "
                f"options: {', '.join(known_options) or 'none'}", field="dataset_options"
            )
        default = known_options[key]
        if default is not None and type(value) is not type(default):
            raise ConfigError(f"{what}: dataset_options: {key} must be {type(default).__name__} "
                              f"like its default {default!r}, got {value!r}", field="dataset_options")
        if key == "image_size" and not 4 <= value <= MAX_IMAGE_SIZE:
            raise ConfigError(f"{what}: dataset_options: image_size must be in 4..{MAX_IMAGE_SIZE}, got {value!r}",
                              field="dataset_options")


@dataclass(frozen=True)
class ProxyConfig:
    """How to train a child for its reward. Defaults are a CPU-friendly proxy on digits.

    The paper's search proxy is CIFAR-10, N = 2, 20 epochs, cosine lr, momentum 0.9, weight
    decay (A.3), 5,000 held-out images (A.1). `cells` is N (normal cells per stack).

    The width is one number fixed for every cell a search trains: the base filters (slim's
    num_conv_filters, DARTS's C), as slim's, DARTS's and ENAS's searches fix it, so every op
    of every cell is equally wide and rewards compare cells rather than widths. A cell whose
    Normal cell concatenates k states then ends at F = 4 × k × base (`network_widths`). Give
    `base_filters` directly, or `filters`: F as NASNet-A's 6-state cell would have it, which
    fixes base = F / 24 (what a proxy's F has always meant); not both, and F = 96 with
    neither. `grad_clip` 0 and `cutout` 0 turn those off; the auxiliary head is on when
    `auxiliary_weight` > 0. `augment` is pad-and-crop plus a horizontal flip where the
    dataset allows one (not for digits). `amp` (bf16 autocast) and `channels_last` apply on
    CUDA only. `trainer` names the training in TRAINERS: "noop" trains nothing and returns at
    once, for measuring the machinery between trials.
    """

    dataset: str = "digits"
    data_root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict, hash=False)
    cells: int = 2
    filters: int | None = None
    base_filters: int | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    grad_clip: float = 5.0
    drop_path_keep: float = 1.0
    auxiliary_weight: float = 0.0
    cutout: int = 0
    augment: bool = True
    reward: str = "val_acc"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    trainer: str = DEFAULT_TRAINER

    def __post_init__(self) -> None:
        check_field_types(self, "proxy config")
        if self.filters is not None and self.base_filters is not None:
            raise ConfigError(f"proxy config: base_filters ({self.base_filters}) and filters ({self.filters}) are both "
                              f"set; give one (filters F fixes base filters = F / {FILTERS_PER_BASE_FILTER})",
                              field="base_filters")
        if self.filters is None and self.base_filters is None:
            object.__setattr__(self, "filters", DEFAULT_FILTERS)
        self._check_ranges()

    def _check_ranges(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"proxy config: {name} must be {rule}, got {getattr(self, name)!r}", field=name)

        def within(name: str) -> bool:
            low, high = INT_BOUNDS[name]
            return low <= getattr(self, name) <= high

        check_dataset_choice(self.dataset, self.dataset_options, "proxy config")
        need(within("cells"), "cells", "in {}..{}".format(*INT_BOUNDS["cells"]))
        # The proxy network uses the CIFAR stem, whose cells have the base filters or more.
        if self.filters is not None:
            smallest = INT_BOUNDS["filters"][0]
            need(
                within("filters") and self.filters % FILTERS_PER_BASE_FILTER == 0,
                "filters", f"a multiple of {FILTERS_PER_BASE_FILTER} in {smallest}..{MAX_FILTERS} (every cell gets "
                f"base filters F / {FILTERS_PER_BASE_FILTER}, and every cell needs {MIN_CELL_FILTERS})",
            )
        elif self.base_filters is not None:  # exactly one of the two is set by now
            need(within("base_filters"), "base_filters",
                 f"in {MIN_CELL_FILTERS}..{MAX_BASE_FILTERS} (every cell needs {MIN_CELL_FILTERS})")
        need(within("epochs"), "epochs", "in {}..{}".format(*INT_BOUNDS["epochs"]))
        need(within("batch_size"), "batch_size",
             "in {}..{} (batch norm needs two images)".format(*INT_BOUNDS["batch_size"]))
        need(self.lr > 0, "lr", "positive")
        need(0 <= self.momentum < 1, "momentum", "in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", "non-negative")
        need(not self.nesterov or self.momentum > 0, "nesterov", "off when momentum is 0")
        need(self.grad_clip >= 0, "grad_clip", "non-negative (0 = off)")
        need(0 < self.drop_path_keep <= 1, "drop_path_keep", "in (0, 1]")
        need(self.auxiliary_weight >= 0, "auxiliary_weight", "non-negative (0 = no auxiliary head)")
        need(0 <= self.cutout <= 1024, "cutout", "in 0..1024 (0 = off)")
        need(self.reward in REWARDS, "reward", f"one of {', '.join(REWARDS)}")
        need(self.trainer in TRAINERS, "trainer", f"one of {', '.join(TRAINERS)}")
        need(0 <= self.seed <= MAX_SEED, "seed", f"in 0..{MAX_SEED}")
        need(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device", "auto, cpu, cuda or cuda:N")

    @property
    def fixed_base_filters(self) -> int:
        """The base filters every cell's proxy network gets: `base_filters`, or F / 24."""
        if self.base_filters is not None:
            return self.base_filters
        assert self.filters is not None  # __post_init__ sets one of the two
        return self.filters // FILTERS_PER_BASE_FILTER

    def network_widths(self, genotype: Genotype) -> NetworkWidths:
        """F and the base filters of `genotype`'s proxy network (F follows the cell's concat)."""
        return network_widths(genotype, base_filters=self.fixed_base_filters)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, holding only the width that was given, and the trainer only when
        it is not the default: a config keeps the form (and the web app's proxy key) it had
        before those fields."""
        data = asdict(self)
        del data["base_filters" if self.base_filters is None else "filters"]
        if self.trainer == DEFAULT_TRAINER:
            del data["trainer"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProxyConfig:
        """Build from a JSON object; missing keys keep their defaults, unknown keys are errors."""
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise ConfigError(f"proxy config: unknown key {key!r}; known: {', '.join(sorted(names))}", field=key)
        return cls(**data)
