"""The NASNet cell space (Zoph et al. 2018) and its genotype format, cellsearch.nasnet/1."""

from searchcore.spaces.nasnet.genotype import (
    CANONICAL_HASH_VERSION,
    MAX_BLOCKS,
    NASNET_FORMAT,
    NUM_CELL_INPUTS,
    Block,
    Cell,
    Genotype,
    cells_of,
)
from searchcore.spaces.nasnet.space import NasnetCellSpace
from searchcore.spaces.registry import GenotypeFormat, register_space

register_space(NasnetCellSpace, GenotypeFormat(
    NASNET_FORMAT,
    parse=Genotype.from_dict,
    build="searchcore.models.nasnet:NASNet",
    draw="searchcore.render:nasnet_graph",
))

__all__ = [
    "CANONICAL_HASH_VERSION",
    "MAX_BLOCKS",
    "NASNET_FORMAT",
    "NUM_CELL_INPUTS",
    "Block",
    "Cell",
    "Genotype",
    "NasnetCellSpace",
    "cells_of",
]
