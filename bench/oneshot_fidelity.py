"""Per-trial search against one-shot search on the digits proxy, at equal CPU time (issue 21).

Four methods, each given `--seconds` of one CPU thread, in one run:

* per-trial PPO and per-trial random: ask a cell, train it standalone (`train_child`, the proxy
  below), tell its reward, until the time is spent;
* one-shot ENAS (REINFORCE controller) and one-shot random (Li & Talwalkar 2019): shared
  weights trained for as many epochs as fit (`train_oneshot`), then its top-k cells trained
  standalone like any trial; their training counts in the method's time.

For each it prints the best standalone validation accuracy found and the cells trained. Then
the fidelity of the shared weights: `--cells` cells sampled uniformly at the end of the one-shot
random run, each scored with the shared weights and trained standalone, and Kendall's τ between
the two rankings (scipy.stats.kendalltau).

Run from the repository root:
    OMP_NUM_THREADS=1 python bench/oneshot_fidelity.py [--seconds 180] [--epochs 3] [--cells 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import numpy as np
import torch
from scipy.stats import kendalltau

from searchcore.oneshot import OneShotConfig
from searchcore.oneshot_train import train_oneshot
from searchcore.proxy import ProxyConfig
from searchcore.spaces import create_space, parse_genotype
from searchcore.strategies import create_strategy
from searchcore.train import proxy_dataset, train_child


def standalone(genotype, proxy: ProxyConfig, data) -> float:
    return train_child(genotype, proxy, data=data).val_acc


def per_trial(strategy_name: str, proxy: ProxyConfig, data, seconds: float, seed: int) -> dict:
    """Ask, train, tell until `seconds` are spent (the trial that crosses the line counts)."""
    strategy = create_strategy(strategy_name, create_space("nasnet"), seed=seed)
    started, best, trials = time.process_time(), 0.0, 0
    while time.process_time() - started < seconds:
        proposal = strategy.ask()
        reward = standalone(proposal.genotype, proxy, data)
        strategy.tell(proposal.trial_id, reward)
        best, trials = max(best, reward), trials + 1
    return {"best": best, "standalone": trials, "seconds": time.process_time() - started}


def oneshot(sampler: str, proxy: ProxyConfig, data, epochs: int, top_k: int, seed: int,
            final_samples: int) -> tuple[dict, object]:
    """A one-shot run of `epochs` shared-weight epochs, then its top-k trained standalone."""
    started = time.process_time()
    config = OneShotConfig(sampler=sampler, proxy=ProxyConfig.from_dict({**proxy.to_dict(), "epochs": epochs}),
                           final_samples=final_samples, top_k=top_k, seed=seed)
    with tempfile.TemporaryDirectory() as out:
        result = train_oneshot(config, out_dir=out, data=data)
    shared_seconds = time.process_time() - started
    accs = [standalone(parse_genotype(cell.genotype), proxy, data) for cell in result.top]
    return {"best": max(accs), "standalone": len(accs), "epochs": epochs, "shared_seconds": shared_seconds,
            "seconds": time.process_time() - started}, result


def epochs_that_fit(proxy: ProxyConfig, data, seconds: float, top_k: int, trial_seconds: float) -> int:
    """Shared-weight epochs that fit `seconds` less the top-k's standalone training, timed on
    one epoch of a random one-shot run."""
    started = time.process_time()
    config = OneShotConfig(sampler="oneshot-random", proxy=ProxyConfig.from_dict({**proxy.to_dict(), "epochs": 1}),
                           final_samples=1, top_k=1)
    with tempfile.TemporaryDirectory() as out:
        train_oneshot(config, out_dir=out, data=data)
    per_epoch = time.process_time() - started
    return max(1, int((seconds - top_k * trial_seconds) / per_epoch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180, help="CPU seconds per method")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of a standalone proxy training")
    parser.add_argument("--cells", type=int, default=20, help="cells for Kendall's tau")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    proxy = ProxyConfig(dataset="digits", cells=1, filters=48, batch_size=64, epochs=args.epochs, device="cpu")
    data = proxy_dataset(proxy)
    started = time.process_time()
    standalone(create_space("nasnet").sample(np.random.default_rng(0)), proxy, data)
    trial_seconds = time.process_time() - started
    epochs = epochs_that_fit(proxy, data, args.seconds, args.top_k, trial_seconds)
    print(f"digits, 1@48, batch 64; a standalone trial: {args.epochs} epochs, {trial_seconds:.1f} CPU s; "
          f"{args.seconds:.0f} CPU s per method (one thread); one-shot: {epochs} shared-weight epochs + top {args.top_k}")
    rows = {
        "per-trial PPO": per_trial("ppo", proxy, data, args.seconds, args.seed),
        "per-trial random": per_trial("random", proxy, data, args.seconds, args.seed),
    }
    rows["one-shot ENAS (REINFORCE)"], _ = oneshot("enas", proxy, data, epochs, args.top_k, args.seed, 20)
    rows["one-shot random"], random_run = oneshot("oneshot-random", proxy, data, epochs, args.top_k, args.seed,
                                                  max(args.cells, 20))
    print(f"{'method':28s} {'best standalone val acc':>24s} {'cells trained':>14s} {'CPU s':>7s}")
    for name, row in rows.items():
        print(f"{name:28s} {row['best']:24.4f} {row['standalone']:14d} {row['seconds']:7.0f}")
    cells = {cell.cell_hash: cell for cell in random_run.final}  # unique cells, as sampled
    chosen = list(cells.values())[: args.cells]
    shared = [cell.val_acc for cell in chosen]
    alone = [standalone(parse_genotype(cell.genotype), proxy, data) for cell in chosen]
    tau, p_value = kendalltau(shared, alone)
    print(f"fidelity over {len(chosen)} cells (one-shot random's final samples): Kendall tau {tau:.3f} "
          f"(p = {p_value:.3f}); shared-weight acc {min(shared):.3f}-{max(shared):.3f}, "
          f"standalone {min(alone):.3f}-{max(alone):.3f}")


if __name__ == "__main__":
    main()
