"""NAS-v1 macro genotypes (Zoph & Le 2017): a chain of convolutions with skip connections.

A genotype stores, per layer, its convolution and the earlier layers it reads (`skips`); none
means the image. The canonical form sorts each layer's skips, since the order in which a layer
concatenates its inputs is not part of the graph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from searchcore.errors import GenotypeError
from searchcore.spaces.registry import check_format, loads_json, sha256_of

MACRO_FORMAT = "cellsearch.macro/1"

_LAYER_FIELDS = ("filter_height", "filter_width", "num_filters", "stride", "skips")
_REQUIRED_LAYER_FIELDS = ("filter_height", "filter_width", "num_filters")


def is_int(value: Any) -> bool:
    """An integer that is not a bool (JSON's true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class MacroLayer:
    """One convolution: its kernel, width, stride and the earlier layers it concatenates.

    Empty `skips` means the layer reads the image (the paper's first rule).
    """

    filter_height: int
    filter_width: int
    num_filters: int
    stride: int = 1
    skips: tuple[int, ...] = ()

    def validate(self, index: int) -> None:
        """Raise `GenotypeError` naming this layer and the field at fault."""
        where = f"layer {index}"
        for field in ("filter_height", "filter_width"):
            value = getattr(self, field)
            # Odd sizes only: the builder pads (size - 1) / 2 on each side to keep the map size.
            if not is_int(value) or value < 1 or value % 2 == 0:
                raise GenotypeError(f"{where}: {field} = {value!r} must be a positive odd integer")
        for field in ("num_filters", "stride"):
            value = getattr(self, field)
            if not is_int(value) or value < 1:
                raise GenotypeError(f"{where}: {field} = {value!r} must be a positive integer")
        if not isinstance(self.skips, tuple):
            raise GenotypeError(f"{where}: skips must be a tuple of layer indices, got {self.skips!r}")
        for source in self.skips:
            if not is_int(source) or not 0 <= source < index:
                allowed = f"layers 0..{index - 1}" if index else "no earlier layer"
                raise GenotypeError(f"{where}: skips holds {source!r}; layer {index} may read {allowed}")
        if len(set(self.skips)) != len(self.skips):
            raise GenotypeError(f"{where}: skips repeats a layer: {list(self.skips)}")

    def canonical(self) -> MacroLayer:
        """The same layer with its inputs sorted: concatenation order is not part of the graph."""
        return MacroLayer(self.filter_height, self.filter_width, self.num_filters, self.stride,
                          tuple(sorted(self.skips)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "filter_height": self.filter_height,
            "filter_width": self.filter_width,
            "num_filters": self.num_filters,
            "stride": self.stride,
            "skips": list(self.skips),
        }


@dataclass(frozen=True)
class MacroGenotype:
    """A NAS-v1 network: its layers in order, each reading only earlier layers."""

    layers: tuple[MacroLayer, ...]

    format = MACRO_FORMAT

    def __post_init__(self) -> None:
        if not isinstance(self.layers, tuple) or not self.layers:
            raise GenotypeError("macro genotype: layers must be a non-empty tuple of layers")
        for k, layer in enumerate(self.layers):
            if not isinstance(layer, MacroLayer):
                raise GenotypeError(f"layer {k}: must be a MacroLayer, got {type(layer).__name__}")
            layer.validate(k)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def output_layers(self) -> tuple[int, ...]:
        """Layers no later layer reads, which the paper concatenates for the classifier.

        The last layer is always among them, so every layer reaches the output.
        """
        read = {source for layer in self.layers for source in layer.skips}
        return tuple(k for k in range(self.num_layers) if k not in read)

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": MACRO_FORMAT, "layers": [layer.to_dict() for layer in self.layers]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MacroGenotype:
        check_format(data, MACRO_FORMAT)
        unknown = set(data) - {"format", "layers"}
        if unknown:
            raise GenotypeError(f"genotype: unknown field(s) {', '.join(sorted(unknown))}")
        raw_layers = data.get("layers")
        if not isinstance(raw_layers, list):
            raise GenotypeError("genotype: layers must be a list of layer objects")
        return cls(layers=tuple(_layer_from_dict(raw, k) for k, raw in enumerate(raw_layers)))

    @classmethod
    def from_json(cls, text: str) -> MacroGenotype:
        return cls.from_dict(loads_json(text))

    # -- identity -----------------------------------------------------------------------
    def canonical(self) -> MacroGenotype:
        return MacroGenotype(layers=tuple(layer.canonical() for layer in self.layers))

    def canonical_hash(self) -> str:
        """SHA-256 of the canonical JSON (skips sorted): equal for equivalent genotypes."""
        return sha256_of(self.canonical().to_dict())


def _layer_from_dict(raw: Any, index: int) -> MacroLayer:
    where = f"layer {index}"
    if not isinstance(raw, Mapping):
        raise GenotypeError(f"{where}: must be an object with {', '.join(_REQUIRED_LAYER_FIELDS)}")
    missing = [field for field in _REQUIRED_LAYER_FIELDS if field not in raw]
    if missing:
        raise GenotypeError(f"{where}: missing field {missing[0]!r}")
    unknown = set(raw) - set(_LAYER_FIELDS)
    if unknown:
        raise GenotypeError(f"{where}: unknown field {min(unknown)!r}")
    skips = raw.get("skips", [])
    if not isinstance(skips, list):
        raise GenotypeError(f"{where}: skips must be a list of layer indices")
    return MacroLayer(
        filter_height=raw["filter_height"],
        filter_width=raw["filter_width"],
        num_filters=raw["num_filters"],
        stride=raw.get("stride", 1),
        skips=tuple(skips),
    )
