"""What a trial's proxy network costs, counted without torch: the web process estimates a search
before launching it, and has no torch.

`proxy_network_cost` gives the params and mult-adds that `searchcore.profile` counts (with
torch's FlopCounterMode on the meta device) for the network `train.build_child` builds: the
CIFAR stem, N normal cells, a reduction, N normal, a reduction, N normal (`models.nasnet`), with
the stem projected once (`project_stem`) and the proxy's fixed base filters. As there, params
leave out the auxiliary head, and mult-adds are those of the convolutions and the classifier
for one image; pooling, batch norm and activations are no multiply-adds of weights.
tests/searchcore/test_cost_estimate.py holds it equal to the torch count.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from searchcore.data import CIFAR_FILES, DATASETS
from searchcore.models.config import NUM_REDUCTIONS
from searchcore.proxy import ProxyConfig
from searchcore.spaces.nasnet import NUM_CELL_INPUTS, Cell, Genotype

#: The CIFAR stem's 3×3 conv widens to stem_multiplier × the base filters (slim's 3.0).
STEM_MULTIPLIER = 3
#: How many random cells an estimate counts, and their seed: a fixed sample, so the same
#: settings always show the same numbers.
SAMPLE_CELLS = 32
SAMPLE_SEED = 0


@dataclass(frozen=True)
class DatasetShape:
    """What a proxy network's size depends on in its dataset, and the images an epoch trains on
    (None where only loading the dataset would tell)."""

    num_classes: int
    in_channels: int
    image_size: int
    train_images: int | None


def dataset_shape(dataset: str, options: Mapping[str, Any] | None = None, root: str | Path | None = None
                  ) -> DatasetShape | None:
    """The shape `searchcore.loaders` gives `dataset`, told without loading it; None when it
    cannot be told (an imagefolder whose train/ folder is not visible here: its classes are its folders).

    The numbers restate the loaders' (digits: 1,797 images less 300 validation and 300 test;
    CIFAR-10: 50,000 less a tenth held out), which the tests compare with what they load."""
    values = {**DATASETS.get(dataset).options(), **(options or {})}
    if dataset == "digits":
        return DatasetShape(10, 1, values["image_size"], 1_797 - 300 - 300)
    if dataset == "cifar10":
        train = 10_000 * (len(CIFAR_FILES) - 1)
        return DatasetShape(10, 3, 32, train - (values["val_size"] or train // 10))
    if dataset == "synthetic":
        return DatasetShape(values["num_classes"], values["in_channels"], values["image_size"], values["num_samples"])
    if dataset == "imagefolder" and root is not None and (Path(root) / "train").is_dir():
        classes = [entry for entry in (Path(root) / "train").iterdir() if entry.is_dir()]
        return DatasetShape(len(classes), values["in_channels"], values["image_size"], None)
    return None


@dataclass(frozen=True)
class NetworkCost:
    params: int
    mult_adds: int


class _Tally:
    """Params and mult-adds as they add up, layer by layer (square maps: `side` is H = W)."""

    def __init__(self) -> None:
        self.params = 0
        self.mult_adds = 0

    def conv(self, c_in: int, c_out: int, kernel: tuple[int, int], out_hw: tuple[int, int], groups: int = 1) -> None:
        weights = c_in // groups * c_out * kernel[0] * kernel[1]
        self.params += weights
        self.mult_adds += weights * out_hw[0] * out_hw[1]  # one multiply-add per weight per output position

    def bn(self, channels: int) -> None:
        self.params += 2 * channels  # scale and shift; the running statistics are buffers

    def relu_conv_bn(self, c_in: int, c_out: int, kernel: int, out_side: int) -> None:
        self.conv(c_in, c_out, (kernel, kernel), (out_side, out_side))
        self.bn(c_out)

    def factorized_reduction(self, c_in: int, c_out: int, in_side: int) -> None:
        out = _halved(in_side)
        self.conv(c_in, c_out // 2, (1, 1), (out, out))
        self.conv(c_in, c_out - c_out // 2, (1, 1), (out, out))
        self.bn(c_out)

    def separable(self, channels: int, kernel: int, out_side: int) -> None:
        self.conv(channels, channels, (kernel, kernel), (out_side, out_side), groups=channels)
        self.conv(channels, channels, (1, 1), (out_side, out_side))
        self.bn(channels)

    def op(self, name: str, channels: int, stride: int, in_side: int) -> None:
        """One op of `searchcore.layers.ops` mapping `channels` to `channels` (every op reads a
        state of the cell's width once the stem is projected)."""
        out = _halved(in_side) if stride == 2 else in_side
        if name in ("identity", "conv_1x1"):
            if name == "conv_1x1" or stride == 2:  # the identity strides as ReLU → 1×1 conv → BN
                self.relu_conv_bn(channels, channels, 1, out)
        elif name in ("conv_1x3_3x1", "conv_1x7_7x1"):
            k = int(name[len("conv_1x")])
            self.conv(channels, channels, (1, k), (in_side, out))  # strides along W first, then H
            self.conv(channels, channels, (k, 1), (out, out))
            self.bn(channels)
        elif name in ("conv_3x3", "dilated_conv_3x3"):
            self.relu_conv_bn(channels, channels, 3, out)
        elif name.startswith("sep_conv_"):
            k = int(name[-1])
            self.separable(channels, k, out)
            self.separable(channels, k, out)
        elif name.startswith("dil_conv_"):
            self.separable(channels, int(name[-1]), out)
        elif name == "skip_connect" and stride == 2:
            self.factorized_reduction(channels, channels, in_side)
        elif name not in ("skip_connect", "none") and "pool" not in name:
            raise ValueError(f"no cost known for op {name!r}")


def _halved(side: int) -> int:
    return math.ceil(side / 2)


@dataclass(frozen=True)
class _Map:
    channels: int
    side: int
    halvings: int


def _cell(tally: _Tally, cell: Cell, prev: _Map, current: _Map, filters: int, reduction: bool) -> _Map:
    """One cell of `models.nasnet.NASNetCell`, its inputs prepared; returns its output map."""
    if prev.halvings == current.halvings - 1:
        tally.factorized_reduction(prev.channels, filters, prev.side)
    elif prev.channels != filters:
        tally.relu_conv_bn(prev.channels, filters, 1, prev.side)
    tally.relu_conv_bn(current.channels, filters, 1, current.side)
    out_side = _halved(current.side) if reduction else current.side
    for block in cell.blocks:
        for state, op in zip(block.inputs, block.ops):
            is_input = state < NUM_CELL_INPUTS
            tally.op(op, filters, 2 if reduction and is_input else 1, current.side if is_input else out_side)
        if block.combine == "concat":
            tally.relu_conv_bn(2 * filters, filters, 1, out_side)
    outputs = cell.output_states()
    if reduction:  # a concatenated cell input is halved like the blocks' outputs
        for state in outputs:
            if state < NUM_CELL_INPUTS:
                tally.factorized_reduction(filters, filters, current.side)
    return _Map(len(outputs) * filters, out_side, current.halvings + reduction)


def proxy_network_cost(genotype: Genotype, config: ProxyConfig, shape: DatasetShape) -> NetworkCost:
    """Params and mult-adds of `genotype`'s proxy network under `config` on images of `shape`,
    as `searchcore.profile` counts them for the network a trial trains."""
    base = config.fixed_base_filters
    tally = _Tally()
    stem = _Map(STEM_MULTIPLIER * base, shape.image_size, 0)
    tally.conv(shape.in_channels, stem.channels, (3, 3), (stem.side, stem.side))
    tally.bn(stem.channels)
    maps = [stem, stem]  # the stem stands in for the first cell's two-back input, projected
    filters = base
    for stack in range(NUM_REDUCTIONS + 1):
        kinds = ([True] if stack else []) + [False] * config.cells
        if stack:
            filters *= 2
        for reduction in kinds:
            cell = genotype.reduction if reduction else genotype.normal
            maps.append(_cell(tally, cell, maps[-2], maps[-1], filters, reduction))
    tally.conv(maps[-1].channels, shape.num_classes, (1, 1), (1, 1))  # the classifier: a bias per class too
    tally.params += shape.num_classes
    return NetworkCost(tally.params, tally.mult_adds)


@dataclass(frozen=True)
class CostRange:
    low: float
    median: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> CostRange:
        return cls(min(values), statistics.median(values), max(values))


@dataclass(frozen=True)
class ProxyCostEstimate:
    """Params and mult-adds over `cells` random cells of the space (min, median, max)."""

    params: CostRange
    mult_adds: CostRange
    cells: int


def sample_cells(space_options: Mapping[str, Any] | None = None, count: int = SAMPLE_CELLS,
                 seed: int = SAMPLE_SEED) -> list[Genotype]:
    """A fixed sample of the nasnet space's cells (uniform, as random search draws them)."""
    from searchcore.spaces import create_space

    space = create_space("nasnet", **(space_options or {}))
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(count)]


def estimate_proxy_cost(config: ProxyConfig, shape: DatasetShape, cells: list[Genotype]) -> ProxyCostEstimate:
    costs = [proxy_network_cost(cell, config, shape) for cell in cells]
    return ProxyCostEstimate(
        params=CostRange.of([cost.params for cost in costs]),
        mult_adds=CostRange.of([cost.mult_adds for cost in costs]),
        cells=len(cells),
    )


__all__ = ["DatasetShape", "NetworkCost", "ProxyCostEstimate", "dataset_shape", "estimate_proxy_cost",
           "proxy_network_cost", "sample_cells"]
