"""The NAS-v1 macro search space (Zoph & Le 2017, §3.3 and §4.1): a whole CNN, layer by layer.

Every layer is one convolution whose filter height and width are drawn from {1, 3, 5, 7} and
whose number of filters from {24, 36, 48, 64}. The paper's CIFAR-10 search either fixes every
stride to 1 (its 15-layer, 5.50 %-error network) or also predicts a stride in [1, 2, 3] (its
20-layer, 6.01 % network). The stride is one value for both axes, as §4.1 words it; the
slides' token list (FH; FW; SH; SW; N) predicts height and width separately, which this space
does not.

Skip connections (§3.3): "At layer N, we add an anchor point which has N − 1 content-based
sigmoids to indicate the previous layers that need to be connected"; the layer's inputs are
exactly the previous layers whose sigmoid sampled 1, the immediately previous layer included,
so a layer is not implicitly fed by its predecessor. Here each sigmoid is a binary decision.
A genotype stores, per layer, those chosen earlier layers as `skips`; the network builder
(`searchcore.models.macro`) applies the paper's three rules for layers with no input, no
output, or inputs of different sizes.

With `skip_connections=False` the space is §3.1's plain chain: layer k reads layer k − 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from searchcore.errors import ConfigError, GenotypeError, SpaceExhaustedError
from searchcore.spaces.base import Decision, SearchSpace
from searchcore.spaces.macro.genotype import MacroGenotype, MacroLayer, is_int

#: The paper's CIFAR-10 choices (§4.1).
PAPER_FILTER_SIZES: tuple[int, ...] = (1, 3, 5, 7)
PAPER_NUM_FILTERS: tuple[int, ...] = (24, 36, 48, 64)
PAPER_STRIDES: tuple[int, ...] = (1, 2, 3)

#: NAS v1 searched 15 to 20 layers; the skip decisions grow with the square of the depth.
MAX_LAYERS = 50


class MacroSpace(SearchSpace[MacroGenotype]):
    """`num_layers` convolutions. Per layer, in the controller's token order (paper Figure 2):
    filter height, filter width, a stride when more than one is allowed, number of filters;
    then one binary anchor decision per earlier layer ("does this layer read layer j?").

    For the paper's stride-free 15-layer network that is 15 × 3 + 15 · 14 / 2 = 150 decisions.
    """

    name = "macro"

    def __init__(
        self,
        num_layers: int = 6,
        filter_sizes: Sequence[int] = PAPER_FILTER_SIZES,
        num_filters: Sequence[int] = PAPER_NUM_FILTERS,
        strides: Sequence[int] = (1,),
        skip_connections: bool = True,
    ) -> None:
        if not is_int(num_layers) or not 1 <= num_layers <= MAX_LAYERS:
            raise ConfigError(f"num_layers must be a whole number in 1..{MAX_LAYERS}, got {num_layers!r}")
        self.num_layers = num_layers
        self.filter_sizes = _choices("filter_sizes", filter_sizes, most=15, odd=True)
        self.num_filters = _choices("num_filters", num_filters, most=2048)
        self.strides = _choices("strides", strides, most=4)
        self.skip_connections = bool(skip_connections)
        self._decisions = tuple(self._make_decisions())

    @property
    def searches_strides(self) -> bool:
        return len(self.strides) > 1

    def _layer_fields(self) -> list[tuple[str, tuple[int, ...]]]:
        """The per-layer convolution decisions, in the controller's order (paper Figure 2)."""
        fields = [("filter_height", self.filter_sizes), ("filter_width", self.filter_sizes)]
        if self.searches_strides:
            fields.append(("stride", self.strides))
        fields.append(("num_filters", self.num_filters))
        return fields

    def _make_decisions(self):
        for k in range(self.num_layers):
            for field, choices in self._layer_fields():
                yield Decision(f"layer.{k}.{field}", choices)
            if self.skip_connections:
                for source in range(k):
                    yield Decision(f"layer.{k}.reads_layer_{source}", (False, True))

    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def config(self) -> dict[str, Any]:
        return {
            "num_layers": self.num_layers,
            "filter_sizes": list(self.filter_sizes),
            "num_filters": list(self.num_filters),
            "strides": list(self.strides),
            "skip_connections": self.skip_connections,
        }

    def decode(self, actions: Sequence[int]) -> MacroGenotype:
        if len(actions) != len(self._decisions):
            raise GenotypeError(f"expected {len(self._decisions)} decisions, got {len(actions)}")
        values = iter(d.choices[int(a)] for d, a in zip(self._decisions, actions))
        layers = []
        for k in range(self.num_layers):
            fields = {field: next(values) for field, _ in self._layer_fields()}
            if self.skip_connections:
                skips = tuple(source for source in range(k) if next(values))
            else:
                skips = (k - 1,) if k else ()
            layers.append(MacroLayer(**fields, skips=skips))
        return MacroGenotype(layers=tuple(layers))

    def encode(self, genotype: MacroGenotype) -> list[int]:
        self._check_fits(genotype)
        actions = []
        for k, layer in enumerate(genotype.layers):
            for field, choices in self._layer_fields():
                actions.append(choices.index(getattr(layer, field)))
            if self.skip_connections:
                actions += [int(source in layer.skips) for source in range(k)]
        return actions

    def _check_fits(self, genotype: MacroGenotype) -> None:
        if genotype.num_layers != self.num_layers:
            raise GenotypeError(f"genotype: has {genotype.num_layers} layers, this space has {self.num_layers}")
        allowed = {"filter_height": self.filter_sizes, "filter_width": self.filter_sizes,
                   "num_filters": self.num_filters, "stride": self.strides}
        for k, layer in enumerate(genotype.layers):
            for field, choices in allowed.items():
                value = getattr(layer, field)
                if value not in choices:
                    raise GenotypeError(
                        f"layer {k}: {field} = {value} is not in this space ({', '.join(map(str, choices))})"
                    )
            if not self.skip_connections and layer.skips != ((k - 1,) if k else ()):
                raise GenotypeError(
                    f"layer {k}: skips = {list(layer.skips)}; this space has no skip connections, "
                    f"so layer {k} reads only {'layer ' + str(k - 1) if k else 'the image'}"
                )

    def mutate(self, genotype: MacroGenotype, rng: np.random.Generator) -> MacroGenotype:
        """Change one decision to a different choice: a conv hyperparameter or one connection."""
        actions = self.encode(genotype)
        mutable = [i for i, d in enumerate(self._decisions) if d.size > 1]
        if not mutable:
            raise SpaceExhaustedError("macro space: every decision has one choice, so nothing can mutate")
        position = mutable[int(rng.integers(len(mutable)))]
        # Draw from the other choices only, so the child always differs from its parent.
        offset = 1 + int(rng.integers(self._decisions[position].size - 1))
        actions[position] = (actions[position] + offset) % self._decisions[position].size
        return self.decode(actions)

    def genotype_from_dict(self, data: Mapping[str, Any]) -> MacroGenotype:
        genotype = MacroGenotype.from_dict(data)
        self._check_fits(genotype)
        return genotype


def _choices(name: str, values: Sequence[int], most: int, odd: bool = False) -> tuple[int, ...]:
    """Validate a constructor's list of options: distinct (odd) integers in 1..most."""
    kind = f"{'odd ' if odd else ''}integers in 1..{most}"
    if not isinstance(values, (list, tuple)) or not values or len(set(values)) != len(values):
        raise ConfigError(f"{name} must be a non-empty list of distinct {kind}, got {values!r}")
    for value in values:
        if not is_int(value) or not 1 <= value <= most or (odd and value % 2 == 0):
            raise ConfigError(f"{name} must hold {kind}, got {value!r}")
    return tuple(values)
