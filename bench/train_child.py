"""Child-training throughput: our device-resident data path against a torchvision DataLoader.

Both paths train the SAME network with the SAME step (`ChildTrainer.train_step`: SGD,
cosine lr, bf16 autocast and channels-last on CUDA) on CIFAR-shaped synthetic data
(32×32×3, 10 classes); only the data path differs:

* ours: the uint8 images live on the device; each batch is gathered by index, then
  cropped, flipped and normalised there in a few batched ops (`DeviceAugment`).
* baseline: the usual torchvision recipe, as `torchvision.datasets.CIFAR10` runs it: per
  image a PIL image, `RandomCrop(32, padding=4)`, `RandomHorizontalFlip`, `ToTensor`,
  `Normalize`, collated by a `DataLoader` with `--workers` processes, then copied over.

With `--onednn`, it measures instead what the way around oneDNN's strided 1×1 bug costs on
the CPU (searchcore.layers.blocks.PointwiseConv; tests/faults/onednn_strided_1x1.py): training
throughput with our subsample-then-conv, with the strided kernel itself (it crashes below 8
input channels on AVX2, so it is also timed at F = 192, where it runs), and with the two broad
switches that would also avoid it: oneDNN off, and oneDNN held to SSE4.1. Each variant runs
in a subprocess of its own, so a crash is reported, not suffered.

With `--per-trial`, it measures what a search pays per trial instead: each of `--trials` random
cells of the nasnet space gets a new network, trained `--epochs` on the digits under the demo
proxy (1@48, batch 64) exactly as a trial is (`run_epoch`), once per numerics variant, and the
clock runs from building the network to the last validation: the plain loop (fp32, NCHW, eager),
channels_last, bf16 autocast (on a CPU without native bf16 — avx512_bf16 or AMX — it is
emulated, and the bench says so), and torch.compile, whose compile time every trial pays, since
every trial is a new network. Variants alternate cell by cell; the ratio is trials per hour
against the plain loop.

Run from the repository root:
    python bench/train_child.py [--device cuda] [--steps 200] [--onednn]
    python bench/train_child.py --per-trial [--device cuda] [--trials 3] [--epochs 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from searchcore.data import DatasetSplits, load_dataset
from searchcore.known import KNOWN, get_known
from searchcore.profile import count_params
from searchcore.spaces import create_space
from searchcore.train import (
    ChildTrainer,
    DeviceAugment,
    ProxyConfig,
    build_child,
    proxy_dataset,
    resolve_device,
    run_epoch,
    steps_per_epoch,
)


class TorchvisionStyleCIFAR(Dataset):
    """HWC uint8 images turned into augmented tensors one at a time, as CIFAR10 does."""

    def __init__(self, data: DatasetSplits) -> None:
        from torchvision import transforms

        images, labels = data.train
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels = labels.tolist()
        self.transform = transforms.Compose([
            transforms.RandomCrop(data.image_size, padding=data.image_size // 8),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def device_batches(data: DatasetSplits, config: ProxyConfig, device: torch.device) -> Iterator:
    """Our path: shuffled index batches gathered and augmented on the device, forever."""
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augment = DeviceAugment(data, config, generator)
    images, labels = (t.to(device) for t in data.train)
    while True:
        order = torch.randperm(len(labels), generator=generator, device=device)
        for start in range(0, len(labels) - config.batch_size + 1, config.batch_size):
            index = order[start : start + config.batch_size]
            yield augment.train(images[index]), labels[index]


def loader_batches(data: DatasetSplits, config: ProxyConfig, device: torch.device, workers: int) -> Iterator:
    """The baseline: a DataLoader over per-image torchvision transforms, copied to the device."""
    loader = DataLoader(
        TorchvisionStyleCIFAR(data), batch_size=config.batch_size, shuffle=True, drop_last=True,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
    )
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def images_per_second(
    consume: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: Iterator,
    device: torch.device,
    warmup: int,
    steps: int,
    batch_size: int,
) -> float:
    """Images per second through `consume` over `steps` batches, after `warmup` untimed ones.

    `consume` returns a device scalar that depends on its batch; reading the running sum
    once makes the clock wait for every queued kernel, with a single host sync.
    """
    total = torch.zeros((), device=device)
    for _ in range(warmup):
        total += consume(*next(batches))
    total.item()
    started = time.perf_counter()
    for _ in range(steps):
        total += consume(*next(batches))
    total.item()
    return steps * batch_size / (time.perf_counter() - started)


#: --onednn variants: (what to set up in the subprocess, extra environment).
ONEDNN_VARIANTS = {
    "ours: subsample, then a stride-1 1x1 conv": ("ours", {}),
    "oneDNN's strided 1x1 kernel (the bug)": ("strided", {}),
    "oneDNN off (torch.backends.mkldnn)": ("mkldnn-off", {}),
    "oneDNN held to SSE4.1 (ONEDNN_MAX_CPU_ISA)": ("ours", {"ONEDNN_MAX_CPU_ISA": "SSE41"}),
}


def train_throughput(args: argparse.Namespace, device: torch.device) -> tuple[float, ChildTrainer]:
    """Training images per second of the chosen child on synthetic CIFAR-shaped data."""
    config = ProxyConfig(dataset="synthetic", cells=args.cells, filters=args.filters,
                         batch_size=args.batch_size, device=str(device))
    data = load_dataset("synthetic", num_samples=args.samples, val_samples=2, image_size=32, in_channels=3)
    torch.manual_seed(config.seed)
    model = build_child(get_known(args.genotype), config, data)
    trainer = ChildTrainer(model, config, total_steps=args.warmup + args.steps, device=device)
    rate = images_per_second(lambda images, labels: trainer.train_step(images, labels)[0],
                             device_batches(data, config, device), device, args.warmup, args.steps, args.batch_size)
    return rate, trainer


def run_variant(variant: str, args: argparse.Namespace) -> None:
    """In the subprocess: set the variant up, print its training throughput."""
    import torch.nn.functional as F

    from searchcore.layers.blocks import PointwiseConv

    torch.set_num_threads(args.threads)
    if variant == "strided":
        PointwiseConv.forward = lambda self, x: F.conv2d(x, self.weight, stride=self.subsample)
    torch.backends.mkldnn.enabled = variant != "mkldnn-off"
    rate, _ = train_throughput(args, torch.device("cpu"))
    print(f"images/s {rate:.2f}")


def compare_onednn_variants(args: argparse.Namespace) -> None:
    """Each variant at each F in a subprocess, alternating over rounds; the best rate kept."""
    print(f"CPU: {os.cpu_count()} cores, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
          f"{args.threads} thread(s); {args.genotype} {args.cells}@F, batch {args.batch_size}, "
          f"{args.warmup} warm-up + {args.steps} timed steps, best of {args.rounds} rounds")
    filters = [int(f) for f in args.onednn_filters.split(",")]
    best: dict[tuple[str, int], float | str] = {}
    for _ in range(args.rounds):
        for name, (variant, env) in ONEDNN_VARIANTS.items():
            for f in filters:
                command = [sys.executable, __file__, "--variant", variant, "--filters", str(f), "--threads",
                           str(args.threads), "--cells", str(args.cells), "--genotype", args.genotype,
                           "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                           "--warmup", str(args.warmup), "--samples", str(args.samples)]
                try:
                    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                                          timeout=600)
                except subprocess.TimeoutExpired:
                    best[name, f] = "hung"
                    continue
                if done.returncode != 0:
                    why = f"signal {-done.returncode} ({signal.Signals(-done.returncode).name})" \
                        if done.returncode < 0 else f"exit {done.returncode}"
                    best[name, f] = f"crashed: {why}"
                    continue
                rate = float(done.stdout.split("images/s")[-1])
                previous = best.get((name, f))
                best[name, f] = max(rate, previous) if isinstance(previous, float) else rate
    ours = next(iter(ONEDNN_VARIANTS))
    print(f"{'training images/s':48s}" + "".join(f"{f'F = {f}':>26s}" for f in filters))
    for name in ONEDNN_VARIANTS:
        cells = []
        for f in filters:
            value, reference = best[name, f], best[ours, f]
            ratio = f" ({value / reference:.2f}x)" if isinstance(value, float) and isinstance(reference, float) else ""
            cells.append(f"{value:.1f}{ratio}" if isinstance(value, float) else value)
        print(f"{name:48s}" + "".join(f"{cell:>26s}" for cell in cells))


class VariantTrainer(ChildTrainer):
    """`ChildTrainer` with its numerics chosen here on any device (the trainer itself keeps
    bf16 and channels_last for CUDA): the variants --per-trial compares."""

    def __init__(self, model, config: ProxyConfig, total_steps: int, device: torch.device, *, bf16: bool,
                 channels_last: bool, compiled: bool) -> None:
        super().__init__(model, config, total_steps, device)
        self.amp, self.device_type = bf16, device.type
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        if compiled:  # attribute reads (set_drop_path_progress) pass through to the network
            self.model = torch.compile(self.model)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()


#: --per-trial variants: VariantTrainer's switches.
TRIAL_VARIANTS = {
    "plain loop (fp32, NCHW, eager)": {"bf16": False, "channels_last": False, "compiled": False},
    "channels_last": {"bf16": False, "channels_last": True, "compiled": False},
    "bf16 autocast": {"bf16": True, "channels_last": False, "compiled": False},
    "channels_last + bf16 autocast": {"bf16": True, "channels_last": True, "compiled": False},
    "torch.compile (compile time counted)": {"bf16": False, "channels_last": False, "compiled": True},
}


def trial_seconds(genotype, config: ProxyConfig, data: DatasetSplits, device: torch.device, variant: dict) -> float:
    """One trial as a worker's child runs it, from building the network to the last validation."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    model = build_child(genotype, config, data)
    total_steps = steps_per_epoch(len(data.train[1]), config.batch_size) * config.epochs
    trainer = VariantTrainer(model, config, total_steps, device, **variant)
    train, val = ([t.to(device) for t in split] for split in (data.train, data.val))
    augment = DeviceAugment(data, config, generator)
    for epoch in range(1, config.epochs + 1):
        run_epoch(trainer, epoch, train, val, augment, None, what="bench trial")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls and convolutions run natively: any CUDA GPU torch supports bf16 on,
    or a CPU with AVX512-BF16 or AMX (else oneDNN emulates them in fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compare_per_trial(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    config = ProxyConfig(dataset="digits", cells=1, filters=48, batch_size=64, epochs=args.epochs, device=str(device))
    data = proxy_dataset(config)
    space, rng = create_space("nasnet"), np.random.default_rng(args.seed)
    cells = [space.sample(rng) for _ in range(args.trials)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{os.cpu_count()} CPU cores ({torch.backends.cpu.get_cpu_capability()}), {args.threads} thread(s)"
    print(f"device: {device} ({name}), torch {torch.__version__}; {args.trials} random nasnet cells, 1@48 on "
          f"digits, batch 64, {args.epochs} epoch(s) per trial; bf16 native: {native_bf16(device)}")
    seconds: dict[str, list[float]] = {variant: [] for variant in TRIAL_VARIANTS}
    warm = trial_seconds(cells[0], config, data, device, TRIAL_VARIANTS[next(iter(TRIAL_VARIANTS))])
    print(f"warm-up trial (untimed): {warm:.1f} s")
    for index, cell in enumerate(cells):  # variants alternate cell by cell: a busy moment hits them all
        for variant, switches in TRIAL_VARIANTS.items():
            try:
                seconds[variant].append(trial_seconds(cell, config, data, device, switches))
            except Exception as exc:  # a variant this torch or machine cannot run is reported, not fatal
                seconds[variant].append(float("nan"))
                print(f"cell {index}: {variant}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            print(f"cell {index}: {variant}: {seconds[variant][-1]:.1f} s", flush=True)
    plain = statistics.mean(seconds[next(iter(TRIAL_VARIANTS))])
    print(f"{'per trial (mean)':40s} {'seconds':>8s} {'trials/h':>9s} {'vs plain':>9s}")
    for variant, values in seconds.items():
        mean = statistics.mean(values)
        print(f"{variant:40s} {mean:8.1f} {3600 / mean:9.0f} {plain / mean:8.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--genotype", default="nasnet-a", choices=KNOWN.names())
    parser.add_argument("--cells", type=int, default=1, help="N, normal cells per stack (default: 1)")
    parser.add_argument("--filters", type=int, default=48, help="F, penultimate filters (default: 48)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per path (default: 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per path first (default: 5)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default: 2)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timed rounds; best kept (default: 2)")
    parser.add_argument("--samples", type=int, default=5000, help="synthetic training images (default: 5000)")
    parser.add_argument("--onednn", action="store_true", help="time the oneDNN workaround against its alternatives")
    parser.add_argument("--onednn-filters", default="48,192", help="F values for --onednn (default: 48,192)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for --onednn and --per-trial (default: 1)")
    parser.add_argument("--per-trial", action="store_true",
                        help="time whole trials under channels_last, bf16 autocast and torch.compile")
    parser.add_argument("--trials", type=int, default=3, help="random cells for --per-trial (default: 3)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per trial for --per-trial (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="the cells' seed for --per-trial (default: 0)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # one --onednn measurement, in a subprocess
    args = parser.parse_args(argv)
    if args.variant:
        return run_variant(args.variant, args)
    if args.per_trial:
        return compare_per_trial(args)
    if args.onednn:
        return compare_onednn_variants(args)
    if min(args.steps, args.rounds, args.samples // args.batch_size) < 1 or args.warmup < 0 or args.workers < 0:
        parser.error("--steps and --rounds must be positive, --samples at least one batch, --warmup/--workers >= 0")

    device = resolve_device(args.device)
    config = ProxyConfig(dataset="synthetic", cells=args.cells, filters=args.filters,
                         batch_size=args.batch_size, device=str(device))
    data = load_dataset("synthetic", num_samples=args.samples, val_samples=2, image_size=32, in_channels=3)
    torch.manual_seed(config.seed)
    model = build_child(get_known(args.genotype), config, data)
    total_steps = 2 * args.rounds * (args.warmup + args.steps)  # both paths train on one cosine schedule
    trainer = ChildTrainer(model, config, total_steps=total_steps, device=device)
    torch.backends.cudnn.benchmark = True

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)")
    print(f"network: {args.genotype} {args.cells}@{args.filters}, {count_params(model):,} params; "
          f"batch {args.batch_size}, {args.rounds} x ({args.warmup} warm-up + {args.steps} timed) steps per path; "
          f"amp {'bf16' if trainer.amp else 'off'}, channels_last {trainer.memory_format is torch.channels_last}")

    paths = {
        "device-resident tensors + on-device augmentation": device_batches(data, config, device),
        f"DataLoader + torchvision transforms, {args.workers} workers": loader_batches(data, config, device, args.workers),
    }
    modes = {
        "data alone": lambda images, labels: images.reshape(-1)[0].float() + labels[0],
        "training": lambda images, labels: trainer.train_step(images, labels)[0],
    }
    best = {(path, mode): 0.0 for path in paths for mode in modes}
    for round_index in range(1, args.rounds + 1):  # alternate, so a busy moment hits both paths
        for path, batches in paths.items():
            for mode, consume in modes.items():
                rate = images_per_second(consume, batches, device, args.warmup, args.steps, args.batch_size)
                best[path, mode] = max(best[path, mode], rate)
                print(f"round {round_index}: {path}: {mode}: {rate:10.1f} images/s")
    print("best of the rounds, images/s:")
    for path in paths:
        print(f"  {path:56s}" + "".join(f"  {mode} {best[path, mode]:10.1f}" for mode in modes))
    ours, baseline = paths
    ratios = ", ".join(f"{mode} {best[ours, mode] / best[baseline, mode]:.2f}x" for mode in modes)
    print(f"ratio (ours / DataLoader): {ratios}")


if __name__ == "__main__":
    main()
