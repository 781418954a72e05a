"""`{% search_cost search as cost %}`: a search's cost panel data (templates/searches/_cost.html),
read through the selectors, so the page's view needs no change to show it."""

from __future__ import annotations

from django import template

from webapp.searches.selectors import search_cost, search_cost_curve

register = template.Library()


@register.simple_tag
def search_cost_panel(search) -> dict:
    """The search's totals, rate and estimate (selectors.search_cost) and its best reward
    against GPU-hours (selectors.search_cost_curve)."""
    cost = search_cost(search=search)
    chart = {"searches": [{"label": f"#{search.pk} {search}", "curve": search_cost_curve(search=search)}]}
    return {**cost, "chart": chart, "cpu_only": cost["devices"] == ["cpu"]}


@register.filter
def duration(seconds) -> str:
    """Seconds as "2 d 3 h", "3 h 20 min", "4 min" or "12 s"; "—" for none."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


@register.filter
def hours(value, digits: int = 3) -> str:
    """GPU-hours with a few significant digits; "—" for none."""
    if value is None:
        return "—"
    return f"{value:.{int(digits)}g}" if value < 1000 else f"{value:,.0f}"
