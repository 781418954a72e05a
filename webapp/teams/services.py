"""Writes for teams and users."""

from django.contrib.auth import get_user_model
from django.db import transaction

from webapp.teams.models import Membership, Team


@transaction.atomic
def user_create(*, username: str, password: str, team_name: str | None = None, email: str = ""):
    """A user in a team (a team of their own by default, so their work is private)."""
    user = get_user_model().objects.create_user(username=username, password=password, email=email)
    team, _ = Team.objects.get_or_create(name=team_name or username)
    Membership.objects.create(team=team, user=user)
    return user


@transaction.atomic
def team_ensure_for_user(*, user) -> Team:
    """The user's default team, made on first use for users created outside `user_create`."""
    from webapp.teams.selectors import team_default_for_user

    team = team_default_for_user(user=user)
    if team is None:
        team, _ = Team.objects.get_or_create(name=user.get_username())
        Membership.objects.create(team=team, user=user)
    return team
