"""Transfer-training throughput: the paper's CIFAR-10 network in fp32 against bf16 autocast with
channels-last, side by side.

Both variants train NASNet-A at 6@768 with the CIFAR stem, the auxiliary head (weight 0.4) and
scheduled drop path (keep 0.6, at half progress), by SGD with Nesterov momentum, weight decay
and gradient clipping at 5, the nasnet-cifar transfer recipe, on CIFAR-shaped random data
(32×32×3, 10 classes). Only the numerics differ: fp32 in the default memory format, or bf16
autocast with the model and the images in channels-last, what transfer training turns on by
default on CUDA. Each variant runs in a subprocess of its own, so its peak memory is its own:
torch.cuda.max_memory_allocated on CUDA, the process's peak RSS (getrusage) on the CPU.

Needs only searchcore's own dependencies (torch >= 2.11). Run from the repository root:
    python bench/transfer_throughput.py [--device cuda] [--batch-size 128] [--steps 50] [--warmup 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import torch
import torch.nn.functional as F
from torch import nn

from searchcore.known import get_known
from searchcore.models import NETWORK_PRESETS, build_model
from searchcore.profile import count_params

VARIANTS = ("fp32", "bf16+channels_last")
#: The nasnet-cifar recipe's optimiser and loss settings (searchcore.transfer.TRANSFER_PRESETS).
LR, MOMENTUM, WEIGHT_DECAY, GRAD_CLIP, AUX_WEIGHT = 0.025, 0.9, 5e-4, 5.0, 0.4
#: Distinct random batches cycled through, so no step reuses the previous one's input.
BATCHES = 4


def measure(args: argparse.Namespace, variant: str) -> dict:
    """Train `--warmup` then `--steps` timed steps in one variant; throughput and peak memory."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    fast = variant != "fp32"
    memory_format = torch.channels_last if fast else torch.contiguous_format
    config = replace(NETWORK_PRESETS["cifar"], num_cells=args.cells, filters=args.filters)
    model = build_model(get_known(args.genotype), config).to(device, memory_format=memory_format).train()
    model.set_drop_path_progress(0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    batches = [(torch.randn(args.batch_size, 3, 32, 32, device=device).contiguous(memory_format=memory_format),
                torch.randint(0, 10, (args.batch_size,), device=device)) for _ in range(BATCHES)]

    def step(index: int) -> None:
        images, labels = batches[index % BATCHES]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            logits, aux_logits = model(images)
            loss = F.cross_entropy(logits.float(), labels) + AUX_WEIGHT * F.cross_entropy(aux_logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()

    for index in range(args.warmup):
        step(index)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for index in range(args.steps):
        step(index)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak_mib, peak_kind = torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max_memory_allocated"
    else:  # ru_maxrss is in KiB on Linux, bytes on macOS
        scale = 2**20 if sys.platform == "darwin" else 2**10
        peak_mib, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, "peak RSS of the process"
    return {"variant": variant, "images_per_second": args.steps * args.batch_size / seconds,
            "step_ms": 1000 * seconds / args.steps, "peak_mib": peak_mib, "peak_kind": peak_kind,
            "params": count_params(model)}


def _run_variant(variant: str, argv: list[str]) -> dict:
    """One variant in a fresh interpreter: its peak memory is not the other's."""
    result = subprocess.run([sys.executable, __file__, *argv, "--variant", variant], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{variant} failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--genotype", default="nasnet-a", help="known cell name")
    parser.add_argument("--cells", type=int, default=6, help="N: normal cells per stack")
    parser.add_argument("--filters", type=int, default=768, help="F: penultimate filters")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (the recipe trains at 32)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (cuDNN and allocator warm-up)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args, args.variant)))
        return

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, {torch.get_num_threads()} torch threads")
    results = [_run_variant(variant, sys.argv[1:]) for variant in VARIANTS]
    print(f"{args.genotype} {args.cells}@{args.filters}, CIFAR stem, auxiliary head, drop path; "
          f"{results[0]['params']:,} params; batch {args.batch_size}, {args.steps} timed steps after {args.warmup}; "
          f"memory: {results[0]['peak_kind']}")
    print(f"{'variant':<20} {'images/s':>10} {'ms/step':>10} {'peak MiB':>10}")
    for r in results:
        print(f"{r['variant']:<20} {r['images_per_second']:>10.2f} {r['step_ms']:>10.1f} {r['peak_mib']:>10.0f}")
    base, fast = results
    print(f"{'ratio (bf16 / fp32)':<20} {fast['images_per_second'] / base['images_per_second']:>9.2f}× "
          f"{'':>10} {fast['peak_mib'] / base['peak_mib']:>9.2f}×")


if __name__ == "__main__":
    main()
