"""Writes for teams and users."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.teams.models import Membership, Team


@transaction.atomic
def user_create(*, username: str, password: str, team_name: str | None = None, email: str = "",
                role: str | None = None):
    """A user in a team (a team of their own by default, so their work is private). The user who
    makes a team owns it; one joining an existing team is a member unless `role` says otherwise."""
    user = get_user_model().objects.create_user(username=username, password=password, email=email)
    team, created = Team.objects.get_or_create(name=team_name or username)
    default = Membership.Role.OWNER if created else Membership.Role.MEMBER
    Membership.objects.create(team=team, user=user, role=role or default)
    return user


@transaction.atomic
def team_ensure_for_user(*, user) -> Team:
    """The user's default team, made on first use for users created outside `user_create`."""
    from webapp.teams.selectors import team_default_for_user

    team = team_default_for_user(user=user)
    if team is None:
        team, _ = Team.objects.get_or_create(name=user.get_username())
        Membership.objects.create(team=team, user=user, role=Membership.Role.OWNER)
    return team


@transaction.atomic
def membership_add(*, team: Team, user, role: str = Membership.Role.MEMBER) -> Membership:
    """Put a user in a team with a role (a user already in it gets the role)."""
    if role not in Membership.Role.values:
        raise ValidationError({"role": [f"unknown role {role!r}: one of {', '.join(Membership.Role.values)}"]})
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership
