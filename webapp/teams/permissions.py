"""What each team role may do: the one table of permission rules (django-rules).

`RULES` maps a permission name to the least role that holds it; roles rank
viewer < member < owner, so an owner may do whatever a member may, and a member whatever a
viewer may. Viewers read and comment; members launch and steer searches and transfers and
review cells; owners also manage the team. `rules.add_perm` registers every row, and
`rules.permissions.ObjectPermissionBackend` (settings AUTHENTICATION_BACKENDS) answers
`user.has_perm(name, obj)`, where `obj` is a Team or anything with a `.team` (a search, a
transfer, a cell's review status). Without an object, or for a team the user is not in, every
permission is refused (the selectors already answer another team's object with a 404).

`require_perm` is what the APIs and services call: it raises Django's PermissionDenied with a
message naming the permission, the team and the role, which the API answers as 403 `{detail}`.
"""

from __future__ import annotations

import rules
from django.core.exceptions import PermissionDenied

from webapp.teams.models import Membership, Team
from webapp.teams.selectors import membership_role

Role = Membership.Role

#: Roles from least to most rights.
ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.OWNER: 2}

#: Permission name → the least role that holds it.
RULES: dict[str, str] = {
    "teams.view": Role.VIEWER,
    "teams.manage": Role.OWNER,
    "searches.launch": Role.MEMBER,
    "searches.steer": Role.MEMBER,  # pause, resume, cancel
    "transfers.launch": Role.MEMBER,
    "transfers.steer": Role.MEMBER,  # pause, resume, cancel
    "reviews.view": Role.VIEWER,
    "reviews.comment": Role.VIEWER,
    "reviews.rate": Role.MEMBER,
    "reviews.tag": Role.MEMBER,
    "reviews.decide": Role.MEMBER,  # shortlist, reject, back to candidate
    "reviews.approve": Role.MEMBER,  # approve for transfer training
}


def team_of(obj) -> Team | None:
    """The team an object belongs to: the object itself when it is a Team, else its `.team`."""
    if isinstance(obj, Team):
        return obj
    return getattr(obj, "team", None)


def role_of(user, obj) -> str | None:
    """The user's role in the object's team, or None (not a member, or no team)."""
    team = team_of(obj)
    if team is None:
        return None
    cache = getattr(user, "_cellsearch_roles", None)  # one query per team and request
    if cache is None:
        cache = {}
        try:
            user._cellsearch_roles = cache
        except AttributeError:  # AnonymousUser and the like
            pass
    if team.pk not in cache:
        cache[team.pk] = membership_role(user=user, team=team)
    return cache[team.pk]


def forget_roles(user) -> None:
    """Drop the roles cached on a user object (after a role changes)."""
    if hasattr(user, "_cellsearch_roles"):
        del user._cellsearch_roles


def _at_least(least: str) -> rules.Predicate:
    @rules.predicate(name=f"is_{least}_or_above")
    def predicate(user, obj=None) -> bool:
        role = role_of(user, obj) if obj is not None else None
        return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(least)]

    return predicate


_PREDICATES = {role: _at_least(role) for role in ROLE_RANK}

for _name, _least in RULES.items():
    rules.set_perm(_name, _PREDICATES[Role(_least)])


def has_perm(user, perm: str, obj) -> bool:
    if perm not in RULES:
        raise KeyError(f"unknown permission {perm!r}: one of {', '.join(RULES)}")
    return bool(user.has_perm(perm, obj))


def require_perm(user, perm: str, obj) -> None:
    """Raise PermissionDenied (403 from the API) unless the user's role allows `perm` on `obj`."""
    if has_perm(user, perm, obj):
        return
    team = team_of(obj)
    role = role_of(user, obj)
    least = RULES[perm]
    where = f"team {team.name!r}" if team is not None else "this object"
    raise PermissionDenied(f"{perm} needs the {least} role or above in {where}; yours is {role or 'none'}.")


def perms_for(user, obj) -> dict[str, bool]:
    """Every permission's answer for the user on the object, with dots as underscores for
    templates (`perms.reviews_approve`)."""
    return {name.replace(".", "_"): has_perm(user, name, obj) for name in RULES}


def team_ids_with_perm(user, perm: str) -> set[int]:
    """The user's teams in which their role allows `perm`: which rows of a cross-team list
    (Best cells) may offer an action. One query, which also fills the role cache."""
    memberships = list(Membership.objects.filter(user=user).select_related("team"))
    cache = getattr(user, "_cellsearch_roles", None)
    if cache is not None:
        cache.update({m.team_id: m.role for m in memberships})
    else:
        user._cellsearch_roles = {m.team_id: m.role for m in memberships}
    return {m.team_id for m in memberships if has_perm(user, perm, m.team)}
