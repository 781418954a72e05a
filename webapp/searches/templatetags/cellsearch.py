"""Small display filters shared by CellSearch's pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def humancount(value) -> str:
    """1234567 → "1.23M": parameter and mult-add counts at a glance."""
    if value is None or value == "":
        return "—"
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"


@register.filter
def pct(value, digits: int = 2) -> str:
    """A reward or accuracy in 0..1 as a percentage: 0.9512 → "95.12%"."""
    if value is None or value == "":
        return "—"
    return f"{100 * float(value):.{int(digits)}f}%"


@register.filter
def seconds(value) -> str:
    """A duration in seconds as "42.1 s", "3 min 05 s" or "2 h 10 min"."""
    if value is None or value == "":
        return "—"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def status_class(status) -> str:
    """The CSS class of a status badge."""
    return f"badge badge-{status}" if status else "badge"


@register.filter
def elapsed(start, end) -> str:
    """The time from `start` to `end` (datetimes) in the style of `seconds`."""
    if not start or not end:
        return "—"
    return seconds((end - start).total_seconds())


@register.filter
def proxy_summary(proxy: dict) -> str:
    """A proxy config in the paper's terms: "N@F, E epochs, batch B" (e.g. "2@96, 10 epochs, batch 64"),
    or "N cells, base filters C, ..." for a proxy that gives the base filters (F then varies by cell)."""
    if not proxy:
        return ""
    if proxy.get("base_filters") is not None:
        width = f"{proxy.get('cells')} cells, base filters {proxy['base_filters']}"
    else:
        width = f"{proxy.get('cells')}@{proxy.get('filters')}"
    return f"{width}, {proxy.get('epochs')} epochs, batch {proxy.get('batch_size')}"
