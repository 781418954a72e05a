"""Reads for teams."""

from webapp.teams.models import Team


def team_default_for_user(*, user) -> Team | None:
    """The team a user's new searches belong to: the first they joined."""
    return Team.objects.filter(membership__user=user).order_by("membership__joined_at", "id").first()


def membership_role(*, user, team) -> str | None:
    """The user's role in the team (a `Membership.Role` value), or None when not a member."""
    from webapp.teams.models import Membership

    if user is None or not getattr(user, "is_authenticated", False):
        return None
    team_id = team if isinstance(team, int) else team.pk
    return Membership.objects.filter(user=user, team_id=team_id).values_list("role", flat=True).first()
