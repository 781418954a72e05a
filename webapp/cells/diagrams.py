"""Server-side Graphviz SVG of a cell, cached by its canonical hash (a cell never changes)."""

from functools import lru_cache

from searchcore.render import render_genotype
from searchcore.spaces import parse_genotype


@lru_cache(maxsize=512)
def _svg_for(cell_hash: str, genotype_json: str) -> bytes:
    return render_genotype(parse_genotype(genotype_json), fmt="svg")


def cell_diagram_svg(*, cell_hash: str, genotype: dict) -> bytes:
    """The Normal and Reduction cells drawn side by side, as an SVG document."""
    import json

    return _svg_for(cell_hash, json.dumps(genotype, sort_keys=True))
