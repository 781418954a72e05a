"""Search spaces, registered by name: `SPACES.get("nasnet")(**config)`."""

from searchcore.errors import ConfigError
from searchcore.registry import Registry
from searchcore.spaces.base import Decision, SearchSpace
from searchcore.spaces.macro import MacroSpace
from searchcore.spaces.nasnet import NasnetCellSpace

SPACES: Registry[type[SearchSpace]] = Registry("search space")
SPACES.register("nasnet", NasnetCellSpace)
SPACES.register("macro", MacroSpace)


def create_space(name: str, **config) -> SearchSpace:
    """A space by name; unknown names and options raise one-line SearchcoreErrors."""
    space_class = SPACES.get(name)
    try:
        return space_class(**config)
    except TypeError as exc:  # an option the space does not take
        raise ConfigError(f"space {name!r}: {exc}") from None


__all__ = ["SPACES", "Decision", "MacroSpace", "NasnetCellSpace", "SearchSpace", "create_space"]
