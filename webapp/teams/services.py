"""Writes for teams and users: members, roles and invite links.

The managing services ask the permission table (`teams.manage`, owners) and keep one guard
rail: a team always has an owner, so its last owner can be neither demoted nor removed.

No activity feed entry is written: the feed (webapp.reviews.services) imports webapp.teams,
so calling it from here would make an import cycle between the two apps.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.teams.models import Invite, Membership, Team
from webapp.teams.permissions import forget_roles, require_perm
from webapp.teams.selectors import invite_token_hash, team_default_for_user

#: How long an invite link stays valid, by default.
INVITE_TTL = timedelta(days=7)


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
    team = team_default_for_user(user=user)
    if team is None:
        team, _ = Team.objects.get_or_create(name=user.get_username())
        Membership.objects.create(team=team, user=user, role=Membership.Role.OWNER)
    return team


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise ValidationError({"role": [f"unknown role {role!r}: one of {', '.join(Membership.Role.values)}"]})


@transaction.atomic
def membership_add(*, team: Team, user, role: str = Membership.Role.MEMBER) -> Membership:
    """Put a user in a team with a role (a user already in it gets the role). No permission
    check: for setup and the other services; owners go through `member_invite`."""
    _check_role(role)
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


def _lock_team(team: Team) -> None:
    """Serialise changes to one team's members (the last-owner guard counts owners)."""
    Team.objects.select_for_update().filter(pk=team.pk).first()


def _changed(*users) -> None:
    for user in users:
        forget_roles(user)


@transaction.atomic
def member_invite(*, actor, team: Team, username: str, role: str = Membership.Role.MEMBER) -> Membership:
    """An owner adds an existing user, by username, to the team with a role."""
    require_perm(actor, "teams.manage", team)
    _check_role(role)
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise ValidationError({"username": [f"no user named {username!r}"]})
    _lock_team(team)
    if Membership.objects.filter(team=team, user=user).exists():
        raise ValidationError({"username": [f"{user.get_username()} is already in team {team.name!r}"]})
    membership = Membership.objects.create(team=team, user=user, role=role)
    _changed(actor, user)
    return membership


def _keep_an_owner(membership: Membership, what: str) -> None:
    if membership.role != Membership.Role.OWNER:
        return
    others = Membership.objects.filter(team=membership.team_id, role=Membership.Role.OWNER).exclude(pk=membership.pk)
    if not others.exists():
        raise ValidationError({"role": [f"{membership.user.get_username()} is the last owner of team "
                                        f"{membership.team.name!r}: make another member an owner before {what}"]})


@transaction.atomic
def member_role_set(*, actor, membership: Membership, role: str) -> Membership:
    """An owner changes a member's role; the last owner keeps theirs."""
    require_perm(actor, "teams.manage", membership.team)
    _check_role(role)
    _lock_team(membership.team)
    membership.refresh_from_db()
    if role != membership.role:
        if role != Membership.Role.OWNER:
            _keep_an_owner(membership, "demoting them")
        membership.role = role
        membership.save(update_fields=["role"])
    _changed(actor, membership.user)
    return membership


@transaction.atomic
def member_remove(*, actor, membership: Membership) -> None:
    """An owner removes a member from the team; the last owner stays."""
    require_perm(actor, "teams.manage", membership.team)
    _lock_team(membership.team)
    membership.refresh_from_db()
    _keep_an_owner(membership, "removing them")
    membership.delete()
    _changed(actor, membership.user)


@transaction.atomic
def invite_create(*, actor, team: Team, role: str = Membership.Role.MEMBER,
                  ttl: timedelta = INVITE_TTL) -> tuple[Invite, str]:
    """An owner makes a one-time invite link: the invite and its token, which is not stored
    (only its hash) and so is shown this once."""
    require_perm(actor, "teams.manage", team)
    _check_role(role)
    if ttl <= timedelta(0):
        raise ValidationError({"expires_in_days": ["an invite must stay valid for some time"]})
    token = secrets.token_urlsafe(32)
    invite = Invite.objects.create(team=team, role=role, token_hash=invite_token_hash(token), created_by=actor,
                                   expires_at=timezone.now() + ttl)
    return invite, token


def invite_problem(invite: Invite | None, *, user=None) -> str | None:
    """Why an invite cannot be accepted (by `user`), or None when it can."""
    if invite is None:
        return "This invite link is not valid."
    if invite.used_at is not None:
        return "This invite link has already been used."
    if invite.expires_at <= timezone.now():
        return "This invite link has expired."
    if user is not None and Membership.objects.filter(team=invite.team_id, user=user).exists():
        return f"You are already in team {invite.team.name!r}."
    return None


@transaction.atomic
def invite_accept(*, user, token: str) -> Membership:
    """The logged-in user takes an invite link: they join its team with its role, once."""
    invite = Invite.objects.select_for_update().select_related("team").filter(
        token_hash=invite_token_hash(token)).first()
    problem = invite_problem(invite, user=user)
    if problem is not None or invite is None:
        raise ValidationError({"token": [problem or "This invite link is not valid."]})
    membership = Membership.objects.create(team=invite.team, user=user, role=invite.role)
    invite.used_by, invite.used_at = user, timezone.now()
    invite.save(update_fields=["used_by", "used_at"])
    _changed(user)
    return membership
