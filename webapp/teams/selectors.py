"""Reads for teams."""

from django.db.models import QuerySet

from webapp.teams.models import Team


def team_list_for_user(*, user) -> QuerySet[Team]:
    return Team.objects.filter(members=user)


def team_default_for_user(*, user) -> Team | None:
    """The team a user's new searches belong to: the first they joined."""
    return Team.objects.filter(membership__user=user).order_by("membership__joined_at", "id").first()
