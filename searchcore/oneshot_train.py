"""One-shot search: a supernet's shared weights trained on sampled cells, the sampler told each
cell's accuracy with those weights, resumable after any epoch.

ENAS (Pham et al. 2018, §2.2) alternates two phases: a pass over the training data that
trains the shared weights, each minibatch on the path of a cell sampled from the controller;
then a fixed number of controller steps, each sampling a cell and rewarding it with its
accuracy on a validation minibatch. Random search with weight sharing (Li & Talwalkar 2019)
trains the same weights on uniformly sampled cells. Both run here as one loop over an
ask/tell strategy (`OneShotConfig.strategy`): a training minibatch's cell is asked and told
None (it trains weights, not the sampler), a scored cell is told its accuracy.

Accuracy with shared weights is measured with batch norm on the batch's own statistics, as
ENAS's reward does: the running averages mix every path the supernet trained and describe
none of them. At the end `final_samples` cells are sampled and scored on the whole
validation split (ENAS scores each on one minibatch; one split for all ranks them on equal
terms) and the best `top_k` unique ones are the result.

A run lives in its `out_dir`: `last.pt` after every epoch (written whole or not at all:
supernet, optimizer, steps done, the sampler's state_dict, the torch RNG and the data
generator, the history), from which a run resumes exactly; `result.json` at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from searchcore.checkpoints import cpu_copy, load_checkpoint
from searchcore.data import DatasetSplits
from searchcore.errors import ConfigError
from searchcore.models.base import Supernet
from searchcore.oneshot import (
    LEADERS,
    ONESHOT_CHECKPOINT_FORMAT,
    SUPERNETS,
    OneShotConfig,
    OneShotEpoch,
    OneShotResult,
    ScoredCell,
    top_unique,
)
from searchcore.registry import import_target
from searchcore.results import TrainingDivergedError
from searchcore.runner import save_checkpoint
from searchcore.spaces import create_space
from searchcore.strategies import Strategy, create_strategy
from searchcore.train import (
    ChildTrainer,
    DeviceAugment,
    cached_dataset,
    cudnn_autotune,
    fork_rng_devices,
    proxy_network_config,
    resolve_device,
    steps_per_epoch,
    train_epoch,
)

LAST_CHECKPOINT = "last.pt"
RESULT_FILE = "result.json"
#: Settings a resumed run may change: where the data lives and which device trains it.
RESUMABLE_CHANGES = frozenset({"proxy.data_root", "proxy.device"})
_CHECKPOINT_KEYS = ("config", "epoch", "supernet", "optimizer", "strategy", "rng", "augment", "history")


def train_oneshot(
    config: OneShotConfig,
    *,
    out_dir: str | Path,
    on_epoch: Callable[[OneShotEpoch], bool | None] | None = None,
    on_progress: Callable[[], None] | None = None,
    data: DatasetSplits | None = None,
) -> OneShotResult:
    """Run (or resume from `out_dir`'s `last.pt`) the one-shot search `config` describes.

    `on_epoch` sees each epoch's report after `last.pt` holds it; False stops the run there
    (resumable; no final ranking, no result.json). `on_progress` is called after every step
    and scored batch (searchcore.runner's proof of life). `data` replaces loading the proxy's
    dataset (tests). Raises ConfigError when `out_dir` holds another run, TrainingDivergedError
    when the loss stops being finite.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proxy = config.proxy
    if data is None:
        data = cached_dataset(proxy.dataset, proxy.data_root, proxy.dataset_options)
    device = resolve_device(proxy.device)
    space = create_space(config.space, **config.space_options)
    resume = _resumable(out / LAST_CHECKPOINT, config)
    with torch.random.fork_rng(devices=fork_rng_devices(device)), cudnn_autotune(device):
        torch.manual_seed(proxy.seed)
        generator = torch.Generator(device=device).manual_seed(proxy.seed)
        network = proxy_network_config(proxy, num_classes=data.num_classes, in_channels=data.in_channels,
                                       image_size=data.image_size)
        supernet: Supernet = import_target(SUPERNETS.get(config.space))(space, network)
        strategy = create_strategy(config.strategy, space, seed=config.seed, **config.sampler_options)
        train_images, train_labels = (t.to(device) for t in data.train)
        val_images, val_labels = (t.to(device) for t in data.val)
        steps_each_epoch = steps_per_epoch(len(train_labels), proxy.batch_size)
        trainer = ChildTrainer(supernet, proxy, steps_each_epoch * config.epochs, device)
        augment = DeviceAugment(data, proxy, generator)
        scorer = _Scorer(supernet, trainer, augment, val_images, val_labels, on_progress)

        history: list[OneShotEpoch] = []
        if resume is not None:
            history = _restore(resume, trainer, strategy, generator, device, steps_each_epoch)
        stopped = False
        for epoch in range(len(history) + 1, config.epochs + 1):
            metrics = _epoch(epoch, config, trainer, strategy, scorer, (train_images, train_labels),
                             history[-1] if history else None, on_progress)
            history.append(metrics)
            save_checkpoint(_checkpoint(config, trainer, strategy, generator, device, history), out / LAST_CHECKPOINT)
            if on_epoch is not None and on_epoch(metrics) is False and epoch < config.epochs:
                stopped = True
                break
        final = [] if stopped else _final_cells(config, strategy, scorer)

    this_run = time.perf_counter() - started
    earlier = sum(m.seconds for m in history[: len(resume["history"])]) if resume is not None else 0.0
    result = OneShotResult(sampler=config.sampler, history=history, final=final, top=top_unique(final, config.top_k),
                           stopped=stopped, seconds=earlier + this_run)
    if not stopped:
        tmp = out / f"{RESULT_FILE}.tmp"
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        tmp.replace(out / RESULT_FILE)
    return result


# -- the two phases --------------------------------------------------------------------------------


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norm normalises by the batch's own statistics and leaves its running averages alone."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    model.train()
    for norm in norms:
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm in norms:
            norm.track_running_stats = True
        model.train(was_training)


class _Scorer:
    """Shared-weight validation accuracy of a cell, on a random batch or on the whole split."""

    def __init__(self, supernet: Supernet, trainer: ChildTrainer, augment: DeviceAugment, images: Tensor,
                 labels: Tensor, on_progress: Callable[[], None] | None) -> None:
        self.supernet = supernet
        self.trainer = trainer
        self.augment = augment
        self.images = images
        self.labels = labels
        self.on_progress = on_progress

    def random_batch(self, genotype: Any) -> float:
        """On one validation batch drawn at random: the sampler's reward."""
        batch = min(self.trainer.config.batch_size, len(self.labels))
        index = torch.randperm(len(self.labels), generator=self.augment.generator, device=self.labels.device)[:batch]
        return self._accuracy(genotype, [index])

    def whole_split(self, genotype: Any) -> float:
        """On every validation image: the final ranking."""
        batch = self.trainer.config.batch_size
        everything = torch.arange(len(self.labels), device=self.labels.device)
        # near-equal batches: none of one image, whose batch statistics would be degenerate
        return self._accuracy(genotype, list(everything.tensor_split(math.ceil(len(self.labels) / batch))))

    @torch.no_grad()
    def _accuracy(self, genotype: Any, batches: list[Tensor]) -> float:
        model = self.supernet
        model.set_path(genotype)
        correct = torch.zeros((), dtype=torch.int64, device=self.labels.device)
        with batch_statistics(model), self.trainer.autocast():
            for index in batches:
                images = self.augment.normalize(self.images[index])
                logits = model(images.contiguous(memory_format=self.trainer.memory_format))
                correct += (logits.argmax(1) == self.labels[index]).sum()
                if self.on_progress is not None:
                    self.on_progress()
        return correct.item() / sum(len(index) for index in batches)


def _epoch(
    epoch: int, config: OneShotConfig, trainer: ChildTrainer, strategy: Strategy, scorer: _Scorer,
    train: tuple[Tensor, Tensor], before: OneShotEpoch | None, on_progress: Callable[[], None] | None,
) -> OneShotEpoch:
    """Epoch `epoch`: a pass of shared-weight training, each minibatch on a sampled cell's path,
    then `config.controller_steps` cells scored and told to the sampler."""
    started = time.perf_counter()
    lr = trainer.lr_at(trainer.steps_done)

    def sample_path() -> None:
        proposal = strategy.ask()
        scorer.supernet.set_path(proposal.genotype)
        strategy.tell(proposal.trial_id, None)  # it trains weights; the sampler learns nothing from it

    train_loss, train_acc, _ = train_epoch(trainer, *train, scorer.augment, on_progress, before_step=sample_path)
    if not math.isfinite(train_loss):
        raise TrainingDivergedError(f"one-shot training diverged: the loss became {train_loss} in epoch {epoch} "
                                    f"(lr {lr:.3g}); lower lr or set grad_clip")
    told = []
    for _ in range(config.controller_steps):
        proposal = strategy.ask()
        reward = scorer.random_batch(proposal.genotype)
        strategy.tell(proposal.trial_id, reward)
        told.append(ScoredCell(proposal.cell_hash, proposal.genotype.to_dict(), reward))
    rewards = [cell.val_acc for cell in told]
    return OneShotEpoch(
        epoch=epoch, train_loss=train_loss, train_acc=train_acc, sampled_val_acc=sum(rewards) / len(rewards),
        best_val_acc=max(before.best_val_acc if before else 0.0, *rewards), lr=lr,
        seconds=time.perf_counter() - started, leaders=top_unique([*(before.leaders if before else []), *told], LEADERS),
    )


def _final_cells(config: OneShotConfig, strategy: Strategy, scorer: _Scorer) -> list[ScoredCell]:
    """`config.final_samples` cells from the sampler, in order, each scored on the whole split
    (a repeat once); told None, so the ranking leaves the sampler as trained."""
    scores: dict[str, float] = {}
    cells = []
    for _ in range(config.final_samples):
        proposal = strategy.ask()
        if proposal.cell_hash not in scores:
            scores[proposal.cell_hash] = scorer.whole_split(proposal.genotype)
        strategy.tell(proposal.trial_id, None)
        cells.append(ScoredCell(proposal.cell_hash, proposal.genotype.to_dict(), scores[proposal.cell_hash]))
    return cells


# -- checkpoints -----------------------------------------------------------------------------------


def _checkpoint(
    config: OneShotConfig, trainer: ChildTrainer, strategy: Strategy, generator: torch.Generator,
    device: torch.device, history: list[OneShotEpoch],
) -> dict[str, Any]:
    """Plain data that `torch.load(weights_only=True)` reads."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {
        "format": ONESHOT_CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "epoch": len(history),
        "supernet": cpu_copy(trainer.model.state_dict()),
        "optimizer": cpu_copy(trainer.optimizer.state_dict()),
        "strategy": strategy.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "cuda": cuda},
        "augment": generator.get_state(),
        "history": [m.to_dict() for m in history],
    }


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict with the proxy's keys as `proxy.<key>`."""
    flat = {key: value for key, value in config.items() if key != "proxy"}
    flat.update({f"proxy.{key}": value for key, value in config.get("proxy", {}).items()})
    return flat


def _resumable(path: Path, config: OneShotConfig) -> dict[str, Any] | None:
    """`out_dir`'s last checkpoint when it continues this very run; None when there is none.
    Another run's is refused, naming the first setting that differs (only RESUMABLE_CHANGES may)."""
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path, fmt=ONESHOT_CHECKPOINT_FORMAT, keys=_CHECKPOINT_KEYS)
    saved, given = _flat(checkpoint["config"]), _flat(config.to_dict())
    for key in sorted(set(saved) | set(given)):
        if key not in RESUMABLE_CHANGES and saved.get(key) != given.get(key):
            raise ConfigError(f"oneshot: {path} runs with {key} = {saved.get(key)!r}, not {given.get(key)!r}; "
                              "resume with its settings or give another output folder", field=key)
    return checkpoint


def _restore(
    checkpoint: dict[str, Any], trainer: ChildTrainer, strategy: Strategy, generator: torch.Generator,
    device: torch.device, steps_each_epoch: int,
) -> list[OneShotEpoch]:
    """Put the loop back where the checkpoint left it; the epochs' reports."""
    trainer.model.load_state_dict(checkpoint["supernet"])
    trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    trainer.steps_done = checkpoint["epoch"] * steps_each_epoch
    strategy.load_state_dict(checkpoint["strategy"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if device.type == "cuda" and checkpoint["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
    generator.set_state(checkpoint["augment"])
    return [OneShotEpoch(**m) for m in checkpoint["history"]]
