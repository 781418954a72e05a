"""Reads for teams, scoped to the user's own teams (another team is a 404)."""

from __future__ import annotations

import hashlib

from django.db.models import Case, Count, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from webapp.ids import id_or_404
from webapp.teams.models import Invite, Membership, Team


def team_default_for_user(*, user) -> Team | None:
    """The team a user's new searches belong to: the first they joined."""
    return Team.objects.filter(membership__user=user).order_by("membership__joined_at", "id").first()


def membership_role(*, user, team) -> str | None:
    """The user's role in the team (a `Membership.Role` value), or None when not a member."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    team_id = team if isinstance(team, int) else team.pk
    return Membership.objects.filter(user=user, team_id=team_id).values_list("role", flat=True).first()


def team_list_for_user(*, user) -> QuerySet[Team]:
    """The user's teams by name, each with `my_role` and `member_count`."""
    mine = Membership.objects.filter(team=OuterRef("pk"), user=user).values("role")[:1]
    return (Team.objects.filter(pk__in=Membership.objects.filter(user=user).values("team"))
            .annotate(my_role=Subquery(mine), member_count=Count("membership", distinct=True))
            .order_by("name", "id"))


def team_get_for_user(*, user, team_id: int) -> Team:
    """One of the user's teams (with `my_role` and `member_count`); any other team is a 404."""
    return get_object_or_404(team_list_for_user(user=user), pk=team_id)


def membership_list(*, team: Team) -> QuerySet[Membership]:
    """The team's members, owners first, then members, then viewers, each by username."""
    rank = Case(When(role=Membership.Role.OWNER, then=Value(0)), When(role=Membership.Role.MEMBER, then=Value(1)),
                default=Value(2), output_field=IntegerField())
    return (Membership.objects.filter(team=team).select_related("user")
            .annotate(rank=rank).order_by("rank", "user__username"))


def membership_get(*, team: Team, user_id: int) -> Membership:
    """A member of the team by user id; a user not in it (or an id no user can have) is a 404."""
    return get_object_or_404(Membership.objects.select_related("user", "team"), team=team,
                             user_id=id_or_404(user_id, "No such member of this team."))


def owner_count(*, team: Team) -> int:
    return Membership.objects.filter(team=team, role=Membership.Role.OWNER).count()


def invite_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_get_by_token(*, token: str) -> Invite | None:
    """The invite a link's token names (used or not, expired or not), or None."""
    return Invite.objects.select_related("team", "used_by").filter(token_hash=invite_token_hash(token)).first()


def invite_list_pending(*, team: Team) -> QuerySet[Invite]:
    """The team's invite links neither used nor expired, newest first."""
    return (Invite.objects.filter(team=team, used_at__isnull=True, expires_at__gt=timezone.now())
            .select_related("created_by").order_by("-created_at"))
