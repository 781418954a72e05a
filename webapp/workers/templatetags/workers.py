"""The queue's health as a strip on other apps' pages (the searches list), so that they show it
without importing the workers app."""

from __future__ import annotations

from django import template

from webapp.workers.selectors import queue_health_for_user

register = template.Library()


@register.inclusion_tag("workers/_queue_health.html", takes_context=True)
def queue_health(context, *, live: bool = False) -> dict:
    """Workers busy, idle and lost, and the user's teams' trials waiting for one."""
    return {"health": queue_health_for_user(user=context["request"].user), "live": live}
