"""What every page's navigation needs to know about the user's roles."""

from __future__ import annotations

from functools import partial

from webapp.teams.permissions import team_ids_with_perm


def may_launch_search(user) -> bool:
    """Whether to offer "New search": a user in no team yet gets one on launching; a viewer in
    every team of theirs may launch nowhere. One query."""
    launch_teams = team_ids_with_perm(user, "searches.launch")
    return bool(launch_teams) or not getattr(user, "_cellsearch_roles", None)


def roles(request) -> dict:
    """`can_launch_search`, asked only when a template reads it."""
    if not request.user.is_authenticated:
        return {}
    return {"can_launch_search": partial(may_launch_search, request.user)}
