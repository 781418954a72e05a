"""Proxy training of child networks: the reward a search strategy learns from.

A child is trained briefly (the paper: 20 epochs at N = 2 with a cosine schedule) and scored
on a held-out validation split that never changes. Children are small, so the whole dataset
lives on the device as uint8 tensors and each batch is augmented there in one shot (random
crop from a zero-padded image, horizontal flip, cutout) — no DataLoader, no worker processes,
no per-image Python. On CUDA the step runs in bf16 autocast with channels-last tensors.

Randomness (weights, shuffling, augmentation, drop path) comes from `config.seed` inside a
forked RNG, so a run is reproducible on the CPU and leaves the caller's RNG untouched.

The trainer, augmentation and epoch loop serve transfer training too (`searchcore.transfer_train`):
they read a config through `TrainingRecipe`, which ProxyConfig and TransferConfig both are.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from searchcore.data import DatasetSplits, load_dataset
from searchcore.errors import ConfigError
from searchcore.models import NetworkConfig, build_model
from searchcore.models.base import ChildNetwork
from searchcore.profile import count_mult_adds, count_params
from searchcore.proxy import REWARDS, ProxyConfig
from searchcore.results import EpochMetrics, TrainingDivergedError, TrainResult
from searchcore.spaces import GenotypeLike


class TrainingRecipe(Protocol):
    """The settings the trainer and the augmentation read: ProxyConfig and TransferConfig both have them."""

    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def momentum(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def nesterov(self) -> bool: ...
    @property
    def grad_clip(self) -> float: ...
    @property
    def auxiliary_weight(self) -> float: ...
    @property
    def augment(self) -> bool: ...
    @property
    def cutout(self) -> int: ...
    @property
    def amp(self) -> bool: ...
    @property
    def channels_last(self) -> bool: ...


# -- on-device augmentation ---------------------------------------------------------------------


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad each image by `padding` and cut it back to size at a random offset.

    One gather for the whole batch: image i's output row r is padded row r + dy[i].
    """
    n, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator, device=device)
    rows = dy + torch.arange(height, device=device).view(1, height, 1)
    cols = dx + torch.arange(width, device=device).view(1, 1, width)
    batch = torch.arange(n, device=device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


def cutout(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zero a `size` × `size` square per image (DeVries & Taylor 2017), clipped at the border.

    The centre may fall anywhere in the image, as in the reference code, so squares near an
    edge are partly outside. Applied after normalisation, zero is the dataset mean.
    """
    n, _, height, width = images.shape
    device = images.device
    cy = torch.randint(0, height, (n, 1, 1), generator=generator, device=device)
    cx = torch.randint(0, width, (n, 1, 1), generator=generator, device=device)
    ys = torch.arange(height, device=device).view(1, height, 1) - cy + size // 2
    xs = torch.arange(width, device=device).view(1, 1, width) - cx + size // 2
    inside = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
    return images.masked_fill(inside.unsqueeze(1), 0)


class DeviceAugment:
    """Turns uint8 batches into normalised float batches on their own device.

    Padding scales with the image: 4 px for 32 px images (the paper's 40 → 32 crop), 2 px
    for 16 px digits.
    """

    def __init__(self, data: DatasetSplits, config: TrainingRecipe, generator: torch.Generator) -> None:
        device = generator.device
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
        self.padding = max(1, data.image_size // 8) if config.augment else 0
        self.flip = config.augment and data.horizontal_flip
        self.cutout = config.cutout
        self.generator = generator

    def normalize(self, images: Tensor) -> Tensor:
        return (images.float() / 255 - self.mean) / self.std

    def train(self, images: Tensor) -> Tensor:
        if self.padding:
            images = random_crop(images, self.padding, self.generator)
        if self.flip:
            images = random_flip(images, self.generator)
        images = self.normalize(images)
        if self.cutout:
            images = cutout(images, self.cutout, self.generator)
        return images


# -- the training step --------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here", field="device")
    return device


def proxy_network_config(config: ProxyConfig, *, num_classes: int, in_channels: int, image_size: int) -> NetworkConfig:
    """The proxy network's config for a dataset of this shape: N = `config.cells` and the
    proxy's base filters (what `build_child` builds, and what `profile.describe` counts).

    The first cell reads the stem through one projection (`project_stem`), as proxy networks
    always have, so a proxy config stored by the web app keeps naming the network it trained.
    """
    return NetworkConfig(
        num_cells=config.cells,
        base_filters=config.fixed_base_filters,
        project_stem=True,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        stem="cifar",
        drop_path_keep=config.drop_path_keep,
        auxiliary=config.auxiliary_weight > 0,
    )


def build_child(genotype: GenotypeLike, config: ProxyConfig, data: DatasetSplits) -> ChildNetwork:
    """The proxy network for `genotype` (`proxy_network_config`) on `data`."""
    network = proxy_network_config(config, num_classes=data.num_classes, in_channels=data.in_channels,
                                   image_size=data.image_size)
    return build_model(genotype, network)


def _logits(outputs: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """(logits, auxiliary logits or None): networks with an auxiliary head return both in training."""
    return outputs if isinstance(outputs, tuple) else (outputs, None)


class ChildTrainer:
    """A child's model with its optimiser and numerics: cosine lr, drop-path progress, bf16
    autocast and channels-last on CUDA, gradient clipping.

    `train_step` returns the batch's summed cross-entropy and correct count as device
    tensors, so a loop accumulates them without a host sync per step. `label_smoothing`
    softens the training targets (the reported training loss is the smoothed one);
    evaluation always scores plain cross-entropy. `steps_done` is what a resumed run restores.
    """

    def __init__(
        self, model: ChildNetwork, config: TrainingRecipe, total_steps: int, device: torch.device,
        *, label_smoothing: float = 0.0,
    ) -> None:
        on_cuda = device.type == "cuda"
        self.config = config
        self.label_smoothing = label_smoothing
        self.total_steps = total_steps
        self.steps_done = 0
        self.amp = config.amp and on_cuda
        self.memory_format = torch.channels_last if config.channels_last and on_cuda else torch.contiguous_format
        self.model = model.to(device).to(memory_format=self.memory_format)
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum,
            weight_decay=config.weight_decay, nesterov=config.nesterov,
        )

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def lr_at(self, step: int) -> float:
        """Single-period cosine decay from `lr` towards 0 over the whole run."""
        return self.config.lr * 0.5 * (1 + math.cos(math.pi * step / self.total_steps))

    def train_step(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.steps_done)
        self.model.set_drop_path_progress(self.steps_done / self.total_steps)
        with self.autocast():
            logits, aux_logits = _logits(self.model(images.contiguous(memory_format=self.memory_format)))
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
            total = loss
            if aux_logits is not None:
                aux_loss = F.cross_entropy(aux_logits.float(), labels, label_smoothing=self.label_smoothing)
                total = loss + self.config.auxiliary_weight * aux_loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.steps_done += 1
        return loss.detach() * len(labels), (logits.argmax(1) == labels).sum()

    @torch.inference_mode()
    def evaluate(
        self, images: Tensor, labels: Tensor, augment: DeviceAugment, on_progress: Callable[[], None] | None = None
    ) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) in eval mode, without augmentation; `on_progress` after each batch."""
        self.model.eval()
        loss_sum = torch.zeros((), device=images.device)
        correct = torch.zeros((), dtype=torch.int64, device=images.device)
        batch_size = self.config.batch_size
        for start in range(0, len(labels), batch_size):
            batch = augment.normalize(images[start : start + batch_size])
            target = labels[start : start + batch_size]
            with self.autocast():
                logits, _ = _logits(self.model(batch.contiguous(memory_format=self.memory_format)))
            loss_sum += F.cross_entropy(logits.float(), target, reduction="sum")
            correct += (logits.argmax(1) == target).sum()
            if on_progress is not None:
                on_progress()
        return loss_sum.item() / len(labels), correct.item() / len(labels)


# -- the whole run ------------------------------------------------------------------------------


def proxy_dataset(config: ProxyConfig) -> DatasetSplits:
    """The dataset `config` trains on, loaded once per process and shared by every trial.

    Call it before a search starts to fail fast on a missing path.
    """
    return cached_dataset(config.dataset, config.data_root, config.dataset_options)


def cached_dataset(name: str, root: str | None, options: Mapping[str, Any]) -> DatasetSplits:
    """`load_dataset`, loaded once per process for the same name, root and options."""
    return _cached_dataset(name, root, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=2)
def _cached_dataset(name: str, root: str | None, options: tuple[tuple[str, Any], ...]) -> DatasetSplits:
    return load_dataset(name, root, **dict(options))


@contextlib.contextmanager
def cudnn_autotune(device: torch.device):
    """Let cuDNN pick the fastest kernels for the fixed batch shape, then restore the setting."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def fork_rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG `torch.random.fork_rng` must save and restore for `device`."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches per epoch: the ragged last batch is dropped, so every step has one shape."""
    return max(1, num_images // batch_size)


def train_epoch(
    trainer: ChildTrainer, images: Tensor, labels: Tensor, augment: DeviceAugment,
    on_progress: Callable[[], None] | None = None, before_step: Callable[[], None] | None = None,
) -> tuple[float, float, float]:
    """One pass over a fresh shuffle: (mean loss, accuracy, training images per second).

    `before_step` runs before every step: one-shot training samples the step's cell there."""
    started = time.perf_counter()
    batch_size = trainer.config.batch_size
    order = torch.randperm(len(labels), generator=augment.generator, device=labels.device)
    loss_sum = torch.zeros((), device=labels.device)
    correct = torch.zeros((), dtype=torch.int64, device=labels.device)
    seen = 0
    for start in range(0, steps_per_epoch(len(labels), batch_size) * batch_size, batch_size):
        index = order[start : start + batch_size]
        if before_step is not None:
            before_step()
        batch_loss, batch_correct = trainer.train_step(augment.train(images[index]), labels[index])
        loss_sum += batch_loss
        correct += batch_correct
        seen += len(index)
        if on_progress is not None:
            on_progress()
    mean_loss = loss_sum.item() / seen  # the epoch's one host sync
    return mean_loss, correct.item() / seen, seen / (time.perf_counter() - started)


def run_epoch(
    trainer: ChildTrainer, epoch: int, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor],
    augment: DeviceAugment, on_progress: Callable[[], None] | None = None, *, what: str,
) -> EpochMetrics:
    """Epoch `epoch`: train on `train` (images, labels), then score `val`; its metrics.

    Raises TrainingDivergedError, naming `what` ("child training", "transfer training"), when
    the training loss is no longer finite.
    """
    epoch_start = time.perf_counter()
    lr = trainer.lr_at(trainer.steps_done)
    train_loss, train_acc, images_per_second = train_epoch(trainer, *train, augment, on_progress)
    if not math.isfinite(train_loss):
        raise TrainingDivergedError(
            f"{what} diverged: the loss became {train_loss} in epoch {epoch} "
            f"(lr {lr:.3g}); lower lr or set grad_clip"
        )
    val_loss, val_acc = trainer.evaluate(*val, augment, on_progress)
    return EpochMetrics(
        epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc,
        lr=lr, seconds=time.perf_counter() - epoch_start, images_per_second=images_per_second,
    )


def train_child(
    genotype: GenotypeLike,
    config: ProxyConfig,
    *,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    checkpoint_sink: Callable[[dict[str, Any]], None] | None = None,
    data: DatasetSplits | None = None,
    evaluate_test: bool = False,
    on_progress: Callable[[], None] | None = None,
) -> TrainResult:
    """Train `genotype`'s proxy network under `config` and score it on the validation split.

    `on_epoch` sees each epoch's metrics; returning False stops the run (the reward then uses
    the epochs done). `checkpoint_sink` receives, after training, a dict of plain data that
    `torch.load(weights_only=True)` reads back: model (CPU state dict), genotype, config,
    epoch, metrics. `data` replaces loading `config.dataset` (benchmarks, tests). The test
    split is scored only with `evaluate_test`, and never feeds the reward. `on_progress` is
    called after every training step and evaluation batch: proof of life for a supervisor
    (searchcore.runner) that kills a training stuck in native code.
    Raises TrainingDivergedError when the loss stops being finite.
    """
    started = time.perf_counter()
    if data is None:
        data = proxy_dataset(config)
    device = resolve_device(config.device)
    with torch.random.fork_rng(devices=fork_rng_devices(device)), cudnn_autotune(device):
        torch.manual_seed(config.seed)
        generator = torch.Generator(device=device).manual_seed(config.seed)
        model = build_child(genotype, config, data)
        params = count_params(model)
        mult_adds = count_mult_adds(model, data.image_size, data.in_channels)
        train_images, train_labels = (t.to(device) for t in data.train)
        val_images, val_labels = (t.to(device) for t in data.val)
        total_steps = steps_per_epoch(len(train_labels), config.batch_size) * config.epochs
        trainer = ChildTrainer(model, config, total_steps, device)
        augment = DeviceAugment(data, config, generator)

        history: list[EpochMetrics] = []
        stopped = False
        for epoch in range(1, config.epochs + 1):
            metrics = run_epoch(
                trainer, epoch, (train_images, train_labels), (val_images, val_labels), augment, on_progress,
                what="child training",
            )
            history.append(metrics)
            if on_epoch is not None and on_epoch(metrics) is False:
                stopped = epoch < config.epochs
                break

        test_acc = None
        if evaluate_test and data.test is not None:
            test_images, test_labels = (t.to(device) for t in data.test)
            test_acc = trainer.evaluate(test_images, test_labels, augment, on_progress)[1]

    val_accs = [m.val_acc for m in history]
    reward = REWARDS.get(config.reward)(val_accs)
    if checkpoint_sink is not None:
        checkpoint_sink({
            "model": {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()},
            "genotype": genotype.to_dict(),
            "config": config.to_dict(),
            "epoch": len(history),
            "metrics": [asdict(m) for m in history],
            "reward": reward,
        })
    return TrainResult(
        reward=reward, val_acc=val_accs[-1], best_val_acc=max(val_accs), test_acc=test_acc,
        params=params, mult_adds=mult_adds, epochs=history, stopped=stopped,
        seconds=time.perf_counter() - started,
    )
