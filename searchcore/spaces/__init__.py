"""Search spaces, registered by name: `SPACES.get("nasnet")(**config)`."""

from searchcore.registry import Registry
from searchcore.spaces.base import Decision, SearchSpace
from searchcore.spaces.macro import MacroSpace
from searchcore.spaces.nasnet import NasnetCellSpace

SPACES: Registry[type[SearchSpace]] = Registry("search space")
SPACES.register("nasnet", NasnetCellSpace)
SPACES.register("macro", MacroSpace)


def create_space(name: str, **config) -> SearchSpace:
    return SPACES.get(name)(**config)


__all__ = ["SPACES", "Decision", "MacroSpace", "NasnetCellSpace", "SearchSpace", "create_space"]
