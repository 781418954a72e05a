"""The registries of search spaces and genotype formats, and the helpers every format shares.

Adding a space is one folder under `searchcore/spaces/` whose `__init__` calls
`register_space(TheSpace, GenotypeFormat(...))`, and one import line in
`searchcore/spaces/__init__.py`. Nothing here imports a space, so a space package can import
this module while it loads; and because this module lives inside `searchcore.spaces`, whoever
imports it has every space, and so every format, registered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from searchcore.errors import ConfigError, GenotypeError
from searchcore.registry import Registry
from searchcore.spaces.base import GenotypeLike, SearchSpace


@dataclass(frozen=True)
class GenotypeFormat:
    """One versioned genotype format and its hooks.

    `parse` loads and validates the JSON form. `build` and `draw` are "module:function"
    strings imported on first use, so registering a format imports neither torch nor
    graphviz: `build(genotype, NetworkConfig) -> nn.Module` serves `searchcore.models.build_model`,
    `draw(genotype) -> graphviz.Digraph` serves `searchcore.render.genotype_graph`.
    """

    name: str
    parse: Callable[[Mapping[str, Any]], GenotypeLike]
    build: str
    draw: str


SPACES: Registry[type[SearchSpace]] = Registry("search space")
GENOTYPE_FORMATS: Registry[GenotypeFormat] = Registry("genotype format")


def register_space(space: type[SearchSpace], genotype_format: GenotypeFormat) -> None:
    """Make `space` creatable by its `name`, and its genotypes loadable, buildable and drawable."""
    if genotype_format.name in GENOTYPE_FORMATS:
        raise ValueError(f"genotype format {genotype_format.name!r} is already registered")
    SPACES.register(space.name, space)
    GENOTYPE_FORMATS.register(genotype_format.name, genotype_format)


def create_space(name: str, **config) -> SearchSpace:
    """A space by name; unknown names and options raise one-line SearchcoreErrors."""
    space_class = SPACES.get(name)
    try:
        return space_class(**config)
    except TypeError as exc:  # an option the space does not take
        raise ConfigError(f"space {name!r}: {exc}") from None


def format_of(genotype: GenotypeLike, purpose: str) -> GenotypeFormat:
    """The registered format of `genotype`; `purpose` ("build", "draw") words the error."""
    name = getattr(genotype, "format", None)
    if not isinstance(name, str) or name not in GENOTYPE_FORMATS:
        raise GenotypeError(f"cannot {purpose} a {type(genotype).__name__}: it is not a genotype of a "
                            f"registered format ({', '.join(GENOTYPE_FORMATS.names())})")
    return GENOTYPE_FORMATS.get(name)


def parse_genotype(data: Mapping[str, Any] | str) -> GenotypeLike:
    """Load a genotype of any registered format from a dict or a JSON string."""
    if isinstance(data, str):
        data = loads_json(data)
    if not isinstance(data, Mapping):
        raise GenotypeError("genotype: must be a JSON object")
    fmt = data.get("format")
    known = GENOTYPE_FORMATS.names()
    if not isinstance(fmt, str):
        raise GenotypeError(f"genotype: format must be a string, one of {', '.join(map(repr, known))}; got {fmt!r}")
    if fmt not in GENOTYPE_FORMATS:
        same_family = [name for name in known if _same_family(fmt, name)]
        if same_family:
            raise GenotypeError(f"genotype: format version {fmt!r} is not supported; this reader knows "
                                f"{', '.join(map(repr, same_family))}")
        raise GenotypeError(f"genotype: format {fmt!r} is not one of {', '.join(known)}")
    return GENOTYPE_FORMATS.get(fmt).parse(data)


def check_format(data: Mapping[str, Any], expected: str) -> None:
    """Raise `GenotypeError` unless `data` is a JSON object in the `expected` format."""
    if not isinstance(data, Mapping):
        raise GenotypeError("genotype: must be a JSON object")
    fmt = data.get("format")
    if fmt != expected:
        if isinstance(fmt, str) and _same_family(fmt, expected):
            raise GenotypeError(f"genotype: format version {fmt!r} is not supported; this reader knows {expected!r}")
        raise GenotypeError(f"genotype: format must be {expected!r}, got {fmt!r}")


def loads_json(text: str) -> Any:
    """`json.loads`, failing with a `GenotypeError`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenotypeError(f"genotype: not valid JSON ({exc})") from None
    except RecursionError:  # "[[[[..." nested deeper than the decoder's recursion limit
        raise GenotypeError("genotype: not valid JSON (nested too deeply)") from None
    except ValueError:  # a number of more digits than int() converts (sys.get_int_max_str_digits())
        raise GenotypeError("genotype: not valid JSON (a number has too many digits)") from None


def sha256_of(data: Any) -> str:
    """SHA-256 of `data`'s JSON with sorted keys and no spaces: one digest per value."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _same_family(fmt: str, known: str) -> bool:
    """Whether `fmt` is another version of `known` ("cellsearch.nasnet/2" of "cellsearch.nasnet/1")."""
    return fmt.startswith(known.rsplit("/", 1)[0] + "/")
