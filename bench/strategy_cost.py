"""What a strategy costs the control worker (issue 20, item 2): ask and tell, with a history of
10,000 told trials, for PPO, REINFORCE and regularised evolution (and random search as the floor);
and a PPO update's time and memory as the history grows. The strategies never train; every
control step loads one from its saved state, asks and tells, and saves it again, so the
state's round trip through torch.save is timed too.

Run from the repository root:  OMP_NUM_THREADS=1 python bench/strategy_cost.py [--history 10000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import torch

from searchcore.spaces import create_space
from searchcore.strategies import create_strategy

#: The paper's settings where they are given: PPO minibatches of 20, evolution's P = 100, S = 25.
STRATEGIES = {"random": {}, "reinforce": {}, "ppo": {"batch_size": 20},
              "evolution": {"population_size": 100, "sample_size": 25}}


def reward_of(genotype) -> float:
    """A cheap stand-in reward that depends on the cell, so the learners learn something."""
    return genotype.to_json().count("sep_conv") / 20


def milliseconds(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"median {statistics.median(ordered) * 1e3:7.3f} ms, p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1e3:7.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000, help="trials told before timing")
    parser.add_argument("--samples", type=int, default=200, help="asks and tells timed after the history")
    args = parser.parse_args()
    space = create_space("nasnet")
    print(f"nasnet space, {args.history:,} trials of history, {args.samples} timed asks and tells, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for name, hparams in STRATEGIES.items():
        strategy = create_strategy(name, space, seed=0, **hparams)
        updates: list[float] = []
        grown = time.perf_counter()
        for _ in range(args.history):
            proposal = strategy.ask()
            started = time.perf_counter()
            strategy.tell(proposal.trial_id, reward_of(proposal.genotype))
            updates.append(time.perf_counter() - started)
        grown = time.perf_counter() - grown
        asks, tells = [], []
        for _ in range(args.samples):
            started = time.perf_counter()
            proposal = strategy.ask()
            asks.append(time.perf_counter() - started)
            started = time.perf_counter()
            strategy.tell(proposal.trial_id, reward_of(proposal.genotype))
            tells.append(time.perf_counter() - started)
        tracemalloc.start()  # apart from the timing, which tracing would slow
        for _ in range(hparams.get("batch_size", 20)):  # one update's worth for the controllers
            proposal = strategy.ask()
            strategy.tell(proposal.trial_id, reward_of(proposal.genotype))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        buffer = io.BytesIO()
        started = time.perf_counter()
        torch.save(strategy.state_dict(), buffer)
        restored = create_strategy(name, space, seed=0, **hparams)
        restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
        round_trip = time.perf_counter() - started
        slowest = max(updates)
        print(f"{name:>10}: ask {milliseconds(asks)} | tell {milliseconds(tells)} | slowest tell in the "
              f"history {slowest * 1e3:8.1f} ms (an update) | state {len(buffer.getvalue()) / 1024:8.1f} KiB, "
              f"save+load {round_trip * 1e3:6.1f} ms | peak Python memory over an update {peak / 2**20:5.1f} MiB | "
              f"{args.history:,} trials in {grown:5.1f} s")


if __name__ == "__main__":
    main()
