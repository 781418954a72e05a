"""Template filters of the best-cells list."""

from __future__ import annotations

from django import template

register = template.Library()


def _count(number, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@register.filter
def proxy_in_words(proxy: dict) -> str:
    """A search's proxy training spelled out for the cells list, e.g. "1 cell, 48 filters, 1 epoch,
    batch 128" (cells: N per stack; filters: the penultimate F, or "base 16 filters" for a proxy
    that fixes the base width instead), where a list row has no room for the N@F notation's key."""
    if not proxy:
        return ""
    if proxy.get("base_filters") is not None:
        width = f"base {_count(proxy['base_filters'], 'filter')}"
    else:
        width = _count(proxy.get("filters"), "filter")
    return ", ".join([_count(proxy.get("cells"), "cell"), width, _count(proxy.get("epochs"), "epoch"),
                      f"batch {proxy.get('batch_size')}"])
