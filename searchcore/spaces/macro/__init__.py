"""The NAS-v1 macro space (Zoph & Le 2017) and its genotype format, cellsearch.macro/1."""

from searchcore.spaces.macro.genotype import MACRO_FORMAT, MacroGenotype, MacroLayer
from searchcore.spaces.macro.space import (
    MAX_LAYERS,
    PAPER_FILTER_SIZES,
    PAPER_NUM_FILTERS,
    PAPER_STRIDES,
    MacroSpace,
)
from searchcore.spaces.registry import GenotypeFormat, register_space

register_space(MacroSpace, GenotypeFormat(
    MACRO_FORMAT,
    parse=MacroGenotype.from_dict,
    build="searchcore.models.macro:MacroNet",
    draw="searchcore.render:macro_graph",
))

__all__ = [
    "MACRO_FORMAT",
    "MAX_LAYERS",
    "PAPER_FILTER_SIZES",
    "PAPER_NUM_FILTERS",
    "PAPER_STRIDES",
    "MacroGenotype",
    "MacroLayer",
    "MacroSpace",
]
