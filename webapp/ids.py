"""Ids from a URL, checked before they reach a query: a URL's `<int:...>` takes any number of
digits, and a lookup through a foreign key (`cell_id=`, `user_id=`) hands a number past 64 bits
to the database driver, which overflows (a 500) where a lookup of a primary key finds nothing."""

from __future__ import annotations

from django.http import Http404

#: The largest id a row can have (a 64-bit primary key).
MAX_ID = 2**63 - 1


def id_or_404(value: int, message: str = "No such object.") -> int:
    """`value`, or a 404 when no row can have it (0 or less, or past MAX_ID)."""
    if not 0 < value <= MAX_ID:
        raise Http404(message)
    return value
