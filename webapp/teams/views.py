"""The team pages: my teams, one team's members and roles (with the owners' forms), and
accepting an invite link.

Thin: reads through the selectors, writes through the services (which ask the permission
table); each form posts and comes back to the page, with a refusal shown as a message.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from webapp.teams import services
from webapp.teams.forms import InviteLinkForm, MemberInviteForm, RoleForm
from webapp.teams.models import Membership
from webapp.teams.permissions import perms_for
from webapp.teams.selectors import (
    invite_get_by_token,
    invite_list_pending,
    membership_get,
    membership_list,
    team_get_for_user,
    team_list_for_user,
)


@require_http_methods(["GET"])
def team_list(request: HttpRequest) -> HttpResponse:
    return render(request, "teams/list.html", {"teams": team_list_for_user(user=request.user)})


@require_http_methods(["GET"])
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = team_get_for_user(user=request.user, team_id=team_id)
    perms = perms_for(request.user, team)
    return render(request, "teams/detail.html", {
        "team": team, "members": membership_list(team=team), "perms": perms,
        "invites": invite_list_pending(team=team) if perms["teams_manage"] else [],
        "invite_form": MemberInviteForm(), "link_form": InviteLinkForm(), "roles": Membership.Role.choices,
        "invite_url": request.session.pop("teams_invite_url", None),
    })


def _errors(request: HttpRequest, errors: dict) -> None:
    for field, reasons in errors.items():
        messages.error(request, f"{field}: {'; '.join(str(reason) for reason in reasons)}")


@require_POST
def team_action(request: HttpRequest, team_id: int, action: str) -> HttpResponse:
    team = team_get_for_user(user=request.user, team_id=team_id)
    back = redirect("teams:detail", team_id=team.pk)
    try:
        if action == "invite":
            form = MemberInviteForm(request.POST)
            if not form.is_valid():
                _errors(request, form.errors)
                return back
            membership = services.member_invite(actor=request.user, team=team, **form.cleaned_data)
            messages.success(request, f"{membership.user.get_username()} joined as {membership.get_role_display()}.")
        elif action == "link":
            form = InviteLinkForm(request.POST)
            if not form.is_valid():
                _errors(request, form.errors)
                return back
            invite, token = services.invite_create(actor=request.user, team=team, role=form.cleaned_data["role"],
                                                   ttl=timedelta(days=form.cleaned_data["expires_in_days"]))
            # shown once, on the page this redirect leads to
            request.session["teams_invite_url"] = request.build_absolute_uri(reverse("teams:join", args=[token]))
        elif action in ("role", "remove"):
            user_id = request.POST.get("user", "")
            membership = membership_get(team=team, user_id=int(user_id) if user_id.isdigit() else 0)
            if action == "role":
                role_form = RoleForm(request.POST)
                if not role_form.is_valid():
                    _errors(request, role_form.errors)
                    return back
                services.member_role_set(actor=request.user, membership=membership, role=role_form.cleaned_data["role"])
                messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display()}.")
            else:
                services.member_remove(actor=request.user, membership=membership)
                messages.success(request, f"{membership.user.get_username()} left the team.")
                if membership.user_id == request.user.pk:
                    return redirect("teams:list")
        else:
            return HttpResponse(status=404)
    except ValidationError as exc:
        _errors(request, exc.message_dict)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return back


@require_http_methods(["GET", "POST"])
def team_join(request: HttpRequest, token: str) -> HttpResponse:
    """An invite link: GET shows the team and role (or why it cannot be used), POST joins, once."""
    if request.method == "POST":
        try:
            membership = services.invite_accept(user=request.user, token=token)
        except ValidationError:
            pass  # the page below says why
        else:
            messages.success(request, f"You joined team {membership.team.name} as {membership.get_role_display()}.")
            return redirect("teams:detail", team_id=membership.team_id)
    invite = invite_get_by_token(token=token)
    problem = services.invite_problem(invite, user=request.user)
    # 404: no such link; 410: used or expired; 200: usable, or refused only because I am already in
    code = 404 if invite is None else 410 if services.invite_problem(invite) else 200
    return render(request, "teams/join.html", {"invite": invite, "problem": problem}, status=code)
