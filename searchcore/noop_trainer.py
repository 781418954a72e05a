"""A trainer that trains nothing (`ProxyConfig(trainer="noop")`): it returns at once, so what a
search of it measures is the machinery between trials — the control step, the queue, the claim,
the child process — and nothing else (bench/control_loop.py).

It imports no torch, and its result is a real one in form only: the reward is drawn from the
cell's hash (the same cell always gets the same one, so strategies see a consistent signal),
and params and mult-adds are `searchcore.cost`'s count of the network the cell would train.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from searchcore.cost import dataset_shape, proxy_network_cost
from searchcore.proxy import REWARDS, ProxyConfig
from searchcore.results import EpochMetrics, TrainResult
from searchcore.spaces.nasnet import Genotype
from searchcore.spaces.registry import sha256_of


def train_nothing(
    genotype: Any,
    config: ProxyConfig,
    *,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    checkpoint_sink: Callable[[dict[str, Any]], None] | None = None,
    data: Any = None,
    evaluate_test: bool = False,
    on_progress: Callable[[], None] | None = None,
) -> TrainResult:
    """`train_child`'s signature; one epoch's metrics, reported to no callback and saved to no
    checkpoint (there is no model)."""
    started = time.perf_counter()
    val_acc = int(sha256_of(genotype.to_dict())[:8], 16) / 0xFFFFFFFF
    params = mult_adds = 0
    shape = dataset_shape(config.dataset, config.dataset_options, config.data_root)
    if isinstance(genotype, Genotype) and shape is not None:
        cost = proxy_network_cost(genotype, config, shape)
        params, mult_adds = cost.params, cost.mult_adds
    epoch = EpochMetrics(epoch=1, train_loss=0.0, train_acc=val_acc, val_loss=0.0, val_acc=val_acc, lr=config.lr,
                         seconds=time.perf_counter() - started, images_per_second=0.0)
    return TrainResult(reward=REWARDS.get(config.reward)([val_acc]), val_acc=val_acc, best_val_acc=val_acc,
                       test_acc=None, params=params, mult_adds=mult_adds, epochs=[epoch], stopped=False,
                       seconds=time.perf_counter() - started)
