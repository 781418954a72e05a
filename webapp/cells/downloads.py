"""Files a user downloads: a cell's genotype (JSON or DARTS string).

Shared by the API and the pages, so both offer the same bytes under the same names.
"""

from __future__ import annotations

import json

from django.http import HttpResponse

from searchcore.errors import GenotypeError
from searchcore.spaces import parse_genotype


class DartsUnsupportedError(ValueError):
    """The genotype has no DARTS form (a cell that concatenates, or another space's genotype)."""


def genotype_in_format_order(genotype: dict) -> dict:
    """The genotype with its keys in the documented order: PostgreSQL's jsonb stores keys
    sorted its own way, and a downloaded or displayed genotype should read the same anywhere."""
    return parse_genotype(genotype).to_dict()


def genotype_json_bytes(genotype: dict) -> bytes:
    """The versioned genotype JSON (`{"format": "cellsearch.nasnet/1", ...}`), indented."""
    return (json.dumps(genotype_in_format_order(genotype), indent=2) + "\n").encode()


def genotype_darts(genotype: dict) -> str:
    """The DARTS `Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])`
    string; raises `DartsUnsupportedError` with a message a user can read."""
    parsed = parse_genotype(genotype)
    to_darts = getattr(parsed, "to_darts", None)
    if to_darts is None:
        raise DartsUnsupportedError(f"{parsed.format} genotypes have no DARTS form; download the JSON instead")
    try:
        return to_darts()
    except GenotypeError as exc:
        raise DartsUnsupportedError(f"{exc}; download the JSON instead") from None


def genotype_filename(*, cell_hash: str, ext: str) -> str:
    return f"cell-{cell_hash[:12]}.{ext}"


def genotype_json_response(*, genotype: dict, cell_hash: str) -> HttpResponse:
    response = HttpResponse(genotype_json_bytes(genotype), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{genotype_filename(cell_hash=cell_hash, ext="json")}"'
    return response


def genotype_darts_response(*, genotype: dict, cell_hash: str) -> HttpResponse:
    """The DARTS string as a text attachment; raises `DartsUnsupportedError`."""
    response = HttpResponse(genotype_darts(genotype) + "\n", content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{genotype_filename(cell_hash=cell_hash, ext="darts.txt")}"'
    )
    return response
