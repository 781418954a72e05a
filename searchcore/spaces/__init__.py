"""Search spaces and their genotype formats, registered by name: `create_space("nasnet", **config)`.

Each space is a package that registers itself (and its genotype format) when imported; the
import line below is all a new space adds here.
"""

from searchcore.spaces import macro, nasnet  # noqa: F401  (each registers its space and format)
from searchcore.spaces.base import Decision, GenotypeLike, SearchSpace
from searchcore.spaces.macro import MacroSpace
from searchcore.spaces.nasnet import NasnetCellSpace
from searchcore.spaces.registry import (
    GENOTYPE_FORMATS,
    SPACES,
    GenotypeFormat,
    create_space,
    format_of,
    parse_genotype,
    register_space,
)

__all__ = [
    "GENOTYPE_FORMATS",
    "SPACES",
    "Decision",
    "GenotypeFormat",
    "GenotypeLike",
    "MacroSpace",
    "NasnetCellSpace",
    "SearchSpace",
    "create_space",
    "format_of",
    "parse_genotype",
    "register_space",
]
