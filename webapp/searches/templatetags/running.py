"""What a running search says, readably: its settings as key and value rows, not Python reprs
(the settings card showed `nesterov=False`, `{'batch_size': 5}` and `data_root=None`), and how
long ago a trial last made progress, to the second (Django's `timesince` counts whole minutes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django import template
from django.utils import timezone

from webapp.searches.templatetags.cellsearch import seconds

register = template.Library()

#: What an unset (None) setting means: the proxy's or the strategy's own default applies.
UNSET = "default"


def readable_key(key: str) -> str:
    return str(key).replace("_", " ")


def readable_value(value) -> str:
    """yes/no for a boolean, "default" for None, `a, b` for a list, the value's text otherwise."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return UNSET
    if isinstance(value, list | tuple):
        return ", ".join(readable_value(item) for item in value) or "none"
    return str(value)


@register.filter
def settings_rows(options: Mapping | None) -> list[tuple[str, list[str]]]:
    """(key, lines) per setting, sorted by key: one line for a plain value, a `key = value`
    line per entry for a nested dict (dataset options, say), "none" for an empty one."""
    rows = []
    for key, value in sorted((options or {}).items()):
        if isinstance(value, Mapping):
            lines = [f"{readable_key(k)} = {readable_value(v)}" for k, v in sorted(value.items())] or ["none"]
        else:
            lines = [readable_value(value)]
        rows.append((readable_key(key), lines))
    return rows


@register.filter
def age(moment: datetime | None) -> str:
    """The time from `moment` to now, as `seconds` writes it ("4.2 s", "3 min 05 s")."""
    if moment is None:
        return "—"
    return seconds(max(0.0, (timezone.now() - moment).total_seconds()))
