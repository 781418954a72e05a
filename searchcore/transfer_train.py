"""Transfer training: a found cell stacked into its full N@F network, trained for hundreds of
epochs, resumable after any epoch, scored on the test split and exported.

It reuses proxy training's trainer, on-device augmentation and epoch loop (searchcore.train),
with label smoothing added. A run lives in its `out_dir`:

- `last.pt` after every epoch (written whole or not at all), holding everything the loop's
  future depends on — model, optimizer, steps done, the torch CPU and CUDA RNG (drop path)
  and the augmentation generator (shuffling, crops, flips, cutout) — so a run resumed from it
  is bitwise the run that never stopped, on the CPU;
- `best.pt` whenever the validation accuracy improves;
- at the end `model.onnx` and `model.ts` (TorchScript) of the final model, each checked
  against PyTorch's logits, and `result.json`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from searchcore.checkpoints import cpu_copy, export_model, load_checkpoint
from searchcore.data import DatasetSplits
from searchcore.errors import ConfigError
from searchcore.models import NetworkConfig, build_model
from searchcore.profile import count_mult_adds, count_params
from searchcore.results import EpochMetrics
from searchcore.runner import save_checkpoint
from searchcore.spaces import GenotypeLike
from searchcore.spaces.nasnet import Genotype
from searchcore.train import (
    ChildTrainer,
    DeviceAugment,
    cached_dataset,
    cudnn_autotune,
    fork_rng_devices,
    resolve_device,
    run_epoch,
    steps_per_epoch,
)
from searchcore.transfer import TRANSFER_CHECKPOINT_FORMAT, TransferConfig, TransferResult

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
RESULT_FILE = "result.json"
#: The exports written at the end, by format, and their file names in `out_dir`.
EXPORT_FILES = {"onnx": "model.onnx", "torchscript": "model.ts"}
#: Settings a resumed run may change: where the data lives and which device trains it.
RESUMABLE_CHANGES = frozenset({"data_root", "device"})
#: The share of free GPU memory a training may plan to fill (the allocator fragments, cuDNN takes workspace).
GPU_MEMORY_HEADROOM = 0.9
_GIB = 2**30


def transfer_network(genotype: GenotypeLike, config: TransferConfig, data: DatasetSplits) -> NetworkConfig:
    """The full network: N@F with the CIFAR stem at the dataset's image size, the stem fed to
    the first cell raw as in the paper's networks, drop path and the auxiliary head as configured."""
    if isinstance(genotype, Genotype):  # F must suit the cell's concat; other formats have no F
        config.network_widths(genotype)
    return NetworkConfig(
        num_cells=config.cells, filters=config.filters, base_filters=config.base_filters,
        num_classes=data.num_classes, in_channels=data.in_channels, image_size=data.image_size, stem="cifar",
        drop_path_keep=config.drop_path_keep, auxiliary=config.auxiliary_weight > 0,
    )


def train_transfer(
    genotype: GenotypeLike,
    config: TransferConfig,
    *,
    out_dir: str | Path,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    on_progress: Callable[[], None] | None = None,
    data: DatasetSplits | None = None,
    exports: Sequence[str] = tuple(EXPORT_FILES),
) -> TransferResult:
    """Train `genotype`'s full network under `config` in `out_dir`, resuming from its `last.pt`.

    `on_epoch` sees each epoch's metrics after `last.pt` holds it; False stops the run there
    (resumable; no test score, no exports, no result.json). `on_progress` is called after every
    step and evaluation batch (searchcore.runner's proof of life). `data` replaces loading
    `config.dataset` (tests); `exports` picks the formats written at the end. On CUDA a memory
    fit check runs first (`check_memory_fit`). Raises ConfigError when `out_dir` holds another
    run, TrainingDivergedError when the loss stops being finite.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = cached_dataset(config.dataset, config.data_root, config.dataset_options)
    device = resolve_device(config.device)
    network = transfer_network(genotype, config, data)
    resume = _resumable(out / LAST_CHECKPOINT, genotype, config)
    with torch.random.fork_rng(devices=fork_rng_devices(device)), cudnn_autotune(device):
        torch.manual_seed(config.seed)
        generator = torch.Generator(device=device).manual_seed(config.seed)
        model = build_model(genotype, network)
        params = count_params(model)
        mult_adds = count_mult_adds(model, data.image_size, data.in_channels)
        train_images, train_labels = (t.to(device) for t in data.train)
        val_images, val_labels = (t.to(device) for t in data.val)
        total_steps = steps_per_epoch(len(train_labels), config.batch_size) * config.epochs
        trainer = ChildTrainer(model, config, total_steps, device, label_smoothing=config.label_smoothing)
        augment = DeviceAugment(data, config, generator)
        check_memory_fit(trainer, data, device)

        history: list[EpochMetrics] = []
        best_val_acc = -1.0
        if resume is not None:
            history, best_val_acc = _restore(resume, trainer, generator, device, total_steps // config.epochs)
        stopped = False
        for epoch in range(len(history) + 1, config.epochs + 1):
            metrics = run_epoch(
                trainer, epoch, (train_images, train_labels), (val_images, val_labels), augment, on_progress,
                what="transfer training",
            )
            history.append(metrics)
            improved = metrics.val_acc > best_val_acc
            best_val_acc = max(best_val_acc, metrics.val_acc)
            checkpoint = _checkpoint(genotype, network, config, trainer, generator, device, history, best_val_acc)
            save_checkpoint(checkpoint, out / LAST_CHECKPOINT)
            if improved:
                save_checkpoint(checkpoint, out / BEST_CHECKPOINT)
            if on_epoch is not None and on_epoch(metrics) is False and epoch < config.epochs:
                stopped = True
                break

        test_acc = None
        if not stopped and data.test is not None:
            test_images, test_labels = (t.to(device) for t in data.test)
            test_acc = trainer.evaluate(test_images, test_labels, augment, on_progress)[1]

    with _beating(on_progress, EXPORT_SECONDS_LIMIT):
        written = {} if stopped else _export(out, exports)
    this_run = time.perf_counter() - started
    earlier = sum(m.seconds for m in history[: len(resume["metrics"])]) if resume is not None else 0.0
    result = TransferResult(
        best_val_acc=best_val_acc, final_val_acc=history[-1].val_acc, test_acc=test_acc, params=params,
        mult_adds=mult_adds, epochs=history, seconds=earlier + this_run, stopped=stopped, exports=written,
    )
    if not stopped:
        tmp = out / f"{RESULT_FILE}.tmp"
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        tmp.replace(out / RESULT_FILE)
    return result


# -- checkpoints ---------------------------------------------------------------------------------


def _checkpoint(
    genotype: GenotypeLike, network: NetworkConfig, config: TransferConfig, trainer: ChildTrainer,
    generator: torch.Generator, device: torch.device, history: list[EpochMetrics], best_val_acc: float,
) -> dict[str, Any]:
    """The interface's checkpoint dict: plain data that `torch.load(weights_only=True)` reads."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {
        "format": TRANSFER_CHECKPOINT_FORMAT,
        "genotype": genotype.to_dict(),
        "network": asdict(network),
        "transfer": config.to_dict(),
        "epoch": len(history),
        "model": cpu_copy(trainer.model.state_dict()),
        "optimizer": cpu_copy(trainer.optimizer.state_dict()),
        "rng": {"torch": torch.get_rng_state(), "cuda": cuda},
        "augment": generator.get_state(),
        "best_val_acc": best_val_acc,
        "metrics": [asdict(m) for m in history],
    }


def _resumable(path: Path, genotype: GenotypeLike, config: TransferConfig) -> dict[str, Any] | None:
    """`out_dir`'s last checkpoint when it continues this very run; None when there is none.

    A checkpoint of another cell or recipe is refused rather than trained on (only
    RESUMABLE_CHANGES may differ), naming the first setting that differs.
    """
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path)
    if checkpoint["genotype"] != genotype.to_dict():
        raise ConfigError(f"transfer: {path} trains another cell; give another output folder", field="genotype")
    saved = checkpoint["transfer"]
    for key, value in config.to_dict().items():
        if key not in RESUMABLE_CHANGES and saved.get(key) != value:
            raise ConfigError(f"transfer: {path} trains with {key} = {saved.get(key)!r}, not {value!r}; "
                              "resume with its settings or give another output folder", field=key)
    return checkpoint


def _restore(
    checkpoint: dict[str, Any], trainer: ChildTrainer, generator: torch.Generator, device: torch.device,
    steps_each_epoch: int,
) -> tuple[list[EpochMetrics], float]:
    """Put the loop back where the checkpoint left it: (epochs' metrics, best validation accuracy)."""
    trainer.model.load_state_dict(checkpoint["model"])
    trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    trainer.steps_done = checkpoint["epoch"] * steps_each_epoch
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if device.type == "cuda" and checkpoint["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
    generator.set_state(checkpoint["augment"])
    return [EpochMetrics(**m) for m in checkpoint["metrics"]], checkpoint["best_val_acc"]


#: How long exports may take while a supervisor is told the process lives (see `_beating`).
EXPORT_SECONDS_LIMIT = 1800.0


@contextlib.contextmanager
def _beating(on_progress: Callable[[], None] | None, limit_seconds: float) -> Iterator[None]:
    """Beat once a second from a thread while one long call (an ONNX export and its check) runs
    without a loop to beat from; after `limit_seconds` the beats stop, so a supervisor still
    catches an export that hangs."""
    if on_progress is None:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        deadline = time.monotonic() + limit_seconds
        while not done.wait(1.0) and time.monotonic() < deadline:
            on_progress()

    thread = threading.Thread(target=beat, name="export-beats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _export(out: Path, formats: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each format's export of the final model (last.pt), with its check."""
    return {fmt: export_model(out / LAST_CHECKPOINT, fmt, out / EXPORT_FILES[fmt]) for fmt in formats}


# -- memory ----------------------------------------------------------------------------------------


def check_memory_fit(trainer: ChildTrainer, data: DatasetSplits, device: torch.device) -> None:
    """Refuse, before hours of training, a batch the GPU cannot hold.

    Times one step of a copy of the model at a small batch and at twice it, extrapolates the
    peak memory linearly to the configured batch, adds the gradients and momentum the real
    optimizer has yet to allocate, and compares that with `torch.cuda.mem_get_info`'s free
    memory. The model, its optimizer and the RNG are left as they were. Skipped on the CPU,
    where there is no fixed memory to compare with (the OS would swap or kill instead).
    """
    if device.type != "cuda":
        return
    batch_size = trainer.config.batch_size
    free, _ = torch.cuda.mem_get_info(device)
    param_bytes = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    small = max(2, min(8, batch_size // 2))
    sizes = (small, 2 * small) if 2 * small <= batch_size else (batch_size,)
    probe = ChildTrainer(copy.deepcopy(trainer.model), trainer.config, total_steps=1, device=device,
                         label_smoothing=trainer.label_smoothing)
    shape = (data.in_channels, data.image_size, data.image_size)
    try:
        with torch.random.fork_rng(devices=fork_rng_devices(device)):
            _step_peak_bytes(probe, shape, sizes[0], device)  # allocates the gradients and momentum once
            peaks = [_step_peak_bytes(probe, shape, size, device) for size in sizes]
    except torch.cuda.OutOfMemoryError:
        peaks = [free + 1]
        sizes = (batch_size,)
    finally:
        del probe
        torch.cuda.empty_cache()
    need = 2 * param_bytes + extrapolate_step_bytes(sizes, peaks, batch_size)
    if need > GPU_MEMORY_HEADROOM * free:
        raise ConfigError(
            f"transfer config: batch_size {batch_size} needs about {need / _GIB:.1f} GiB of GPU memory, but {device} "
            f"has {free / _GIB:.1f} GiB free; lower batch_size or filters", field="batch_size",
        )


def extrapolate_step_bytes(sizes: Sequence[int], peaks: Sequence[int], batch_size: int) -> float:
    """A step's memory at `batch_size`, linear in the batch through the peaks measured at `sizes`
    (one size: that size is the batch)."""
    if len(sizes) == 1:
        return float(peaks[0])
    per_image = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    return peaks[0] + per_image * (batch_size - sizes[0])


def _step_peak_bytes(probe: ChildTrainer, shape: tuple[int, int, int], batch: int, device: torch.device) -> int:
    """Memory one training step at `batch` needs above what is allocated before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    images = torch.zeros((batch, *shape), device=device)
    labels = torch.zeros(batch, dtype=torch.int64, device=device)
    probe.train_step(images, labels)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
