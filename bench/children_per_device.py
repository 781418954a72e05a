"""Children per device on the CPU: one training with every core against one training per core,
in trials per hour, side by side in one run (issue 20, item 3).

Each mode trains the same random cells of the default nasnet space under the quickstart demo's
proxy (1 cell, 48 filters, batch 64; 1 epoch by default, `--epochs` for more) on the digits, each
in the child process a gpu worker would start (`searchcore.runner.run_trial`, with the threads a
worker gives it):

* `1 x N threads`: one child at a time, `threads_per_child(1)` threads (a worker `-c 1`);
* `N x 1 thread`: N children at once, one thread each (a worker `-c N`).

A third row shows what a worker that set no threads costs: two children at once, each told
nothing, so torch gives each every core.

With `--device cuda`, the children share one GPU instead (a gpu worker `-c N` on one device:
bin/quickstart's CELLSEARCH_CHILDREN_PER_GPU), under the default proxy (2@96 on the digits,
`--epochs`), for each N in `--children`: trials per GPU-hour, against one child.

Run from the repository root:
    OMP_NUM_THREADS=1 python bench/children_per_device.py [--trials 4]
    python bench/children_per_device.py --device cuda --children 1,2,4,8 [--trials 16] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import numpy as np

from searchcore.proxy import ProxyConfig
from searchcore.runner import run_trial, threads_per_child
from searchcore.spaces import create_space


def trials_per_hour(cells: list[dict], config: ProxyConfig, *, children: int, threads: int | None) -> float:
    """Train every cell, `children` at a time, each child with `threads` (None: torch's own
    choice, with no OMP_NUM_THREADS in its environment)."""
    unset = {name: os.environ.pop(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
             if threads is None and name in os.environ}
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=children) as pool:
            outcomes = list(pool.map(lambda cell: run_trial(cell, config, num_threads=threads), cells))
    finally:
        os.environ.update(unset)
    seconds = time.perf_counter() - start
    failed = [outcome for outcome in outcomes if outcome.status != "finished"]
    if failed:
        raise SystemExit(f"a training did not finish: {failed[0]}")
    return len(cells) * 3600 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="cells trained in each mode")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu (default), or cuda[:N]: children sharing one GPU")
    parser.add_argument("--children", default="1,2,4,8", help="children at once on the GPU, comma-separated")
    args = parser.parse_args()
    cores = threads_per_child(1)
    space = create_space("nasnet")
    rng = np.random.default_rng(0)
    cells = [space.sample(rng).to_dict() for _ in range(args.trials)]
    if args.device.startswith("cuda"):
        config = ProxyConfig(dataset="digits", epochs=args.epochs, device=args.device)
        counts = [int(n) for n in args.children.split(",")]
        print(f"{args.device}, {cores} cores, {args.trials} trials of the default proxy ({config.cells}@{config.filters}, "
              f"batch {config.batch_size}, {args.epochs} epoch(s)) on digits, N children sharing the GPU")
        modes = [(f"{n} children per GPU", n, threads_per_child(n)) for n in counts]
    else:
        config = ProxyConfig(dataset="digits", epochs=args.epochs, cells=1, filters=48, batch_size=64)
        print(f"{cores} cores, {args.trials} trials of 1@48, {args.epochs} epoch(s), batch 64, on digits "
              f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
        modes = [(f"1 x {cores} threads", 1, cores), (f"{cores} x 1 thread", cores, 1),
                 (f"{cores} x unset (torch's default)", cores, None)]
    rates = {}
    for name, children, threads in modes:
        rates[name] = trials_per_hour(cells, config, children=children, threads=threads)
        print(f"{name:>32}: {rates[name]:7.1f} trials/h")
    base = rates[modes[0][0]]
    for name, rate in rates.items():
        print(f"{name:>32}: {rate / base:5.2f}x the one-child rate")


if __name__ == "__main__":
    main()
