"""Reads for teams."""

from webapp.teams.models import Team


def team_default_for_user(*, user) -> Team | None:
    """The team a user's new searches belong to: the first they joined."""
    return Team.objects.filter(membership__user=user).order_by("membership__joined_at", "id").first()
