"""Team pages and API: roles and membership management (issue 16, item 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from webapp.teams.models import Invite, Membership
from webapp.teams.services import user_create


@pytest.fixture
def api():
    def client_for(someone):
        client = APIClient()
        client.force_authenticate(someone)
        return client

    return client_for


@pytest.fixture
def carol(db):
    return user_create(username="carol", password="pw-123456789", team_name="team-c")


def role_of(team, someone) -> str | None:
    return Membership.objects.filter(team=team, user=someone).values_list("role", flat=True).first()


# -- listing and seeing a team ------------------------------------------------------------------


def test_my_teams_with_my_role(user, team, member_of, api, client):
    viewer = member_of("viewer")
    body = api(viewer).get(reverse("api:team-list")).json()
    assert [(t["name"], t["role"], t["member_count"]) for t in body["results"]] == [("team-a", "viewer", 2)]
    detail = api(viewer).get(reverse("api:team-detail", args=[team.pk])).json()
    assert [(m["username"], m["role"]) for m in detail["members"]] == [("alice", "owner"), (viewer.username, "viewer")]
    assert detail["permissions"]["teams_view"] and not detail["permissions"]["teams_manage"]
    client.force_login(user)
    page = client.get(reverse("teams:list")).content.decode()
    assert "team-a" in page and reverse("teams:detail", args=[team.pk]) in page
    assert 'href="/teams/"' in client.get(reverse("searches:list")).content.decode()  # the nav link


def test_another_teams_page_and_endpoints_are_404(user, team, other_user, api, client):
    theirs = api(other_user)
    assert theirs.get(reverse("api:team-detail", args=[team.pk])).status_code == 404
    assert theirs.get(reverse("api:team-members", args=[team.pk])).status_code == 404
    assert theirs.post(reverse("api:team-members", args=[team.pk]), {"username": "bob"}).status_code == 404
    assert theirs.patch(reverse("api:team-member", args=[team.pk, user.pk]), {"role": "viewer"}).status_code == 404
    assert theirs.delete(reverse("api:team-member", args=[team.pk, user.pk])).status_code == 404
    assert theirs.post(reverse("api:team-invites", args=[team.pk]), {}).status_code == 404
    client.force_login(other_user)
    assert client.get(reverse("teams:detail", args=[team.pk])).status_code == 404
    assert client.post(reverse("teams:action", args=[team.pk, "remove"]), {"user": user.pk}).status_code == 404
    assert role_of(team, user) == "owner"
    # a user of my team who is not in it
    assert api(user).get(reverse("api:team-member", args=[team.pk, other_user.pk])).status_code == 404


# -- owners manage -----------------------------------------------------------------------------


def test_owner_invites_by_username_from_the_api(user, team, carol, api):
    response = api(user).post(reverse("api:team-members", args=[team.pk]), {"username": "carol", "role": "viewer"})
    assert response.status_code == 201, response.json()
    assert response.json()["role"] == "viewer" and role_of(team, carol) == "viewer"
    again = api(user).post(reverse("api:team-members", args=[team.pk]), {"username": "carol"})
    assert again.status_code == 400 and "already" in again.json()["username"][0]
    nobody = api(user).post(reverse("api:team-members", args=[team.pk]), {"username": "nobody"})
    assert nobody.status_code == 400 and "nobody" in nobody.json()["username"][0]
    assert api(carol).get(reverse("api:team-detail", args=[team.pk])).status_code == 200


def test_owner_invites_by_username_from_the_page(user, team, carol, client):
    client.force_login(user)
    response = client.post(reverse("teams:action", args=[team.pk, "invite"]), {"username": "carol", "role": "member"},
                           follow=True)
    assert role_of(team, carol) == "member"
    assert "carol joined as Member" in response.content.decode()


def test_invite_link_works_once(user, team, carol, other_user, api, client):
    response = api(user).post(reverse("api:team-invites", args=[team.pk]), {"role": "viewer"})
    assert response.status_code == 201
    body = response.json()
    assert body["url"].endswith(reverse("teams:join", args=[body["token"]])) and body["role"] == "viewer"
    invite = Invite.objects.get()
    assert invite.token_hash != body["token"] and body["token"] not in invite.token_hash  # stored hashed

    client.force_login(carol)
    join = reverse("teams:join", args=[body["token"]])
    page = client.get(join)
    assert page.status_code == 200 and "team-a" in page.content.decode()
    assert client.post(join).status_code == 302
    assert role_of(team, carol) == "viewer"
    invite.refresh_from_db()
    assert invite.used_by == carol and invite.used_at is not None

    client.force_login(other_user)  # the same link a second time
    refused = client.post(join)
    assert refused.status_code == 410 and "already been used" in refused.content.decode()
    assert role_of(team, other_user) is None
    assert client.get(reverse("teams:join", args=["not-a-token"])).status_code == 404


def test_expired_invite_link_is_refused(user, team, carol, client):
    client.force_login(user)
    client.post(reverse("teams:action", args=[team.pk, "link"]), {"role": "member", "expires_in_days": 1})
    url = client.get(reverse("teams:detail", args=[team.pk])).context["invite_url"]
    assert url and "/teams/join/" in url
    assert client.get(reverse("teams:detail", args=[team.pk])).context["invite_url"] is None  # shown once
    Invite.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(carol)
    refused = client.post(url)
    assert refused.status_code == 410 and "expired" in refused.content.decode()
    assert role_of(team, carol) is None


def test_role_change_and_removal(user, team, member_of, api, client):
    someone, other = member_of("member"), member_of("member")
    response = api(user).patch(reverse("api:team-member", args=[team.pk, someone.pk]), {"role": "owner"},
                               format="json")
    assert response.status_code == 200 and role_of(team, someone) == "owner"
    assert api(user).patch(reverse("api:team-member", args=[team.pk, someone.pk]), {"role": "boss"},
                           format="json").status_code == 400
    assert api(user).delete(reverse("api:team-member", args=[team.pk, someone.pk])).status_code == 204
    assert role_of(team, someone) is None
    assert api(someone).get(reverse("api:team-detail", args=[team.pk])).status_code == 404  # gone

    client.force_login(user)
    client.post(reverse("teams:action", args=[team.pk, "role"]), {"user": other.pk, "role": "viewer"})
    assert role_of(team, other) == "viewer"
    client.post(reverse("teams:action", args=[team.pk, "remove"]), {"user": other.pk})
    assert role_of(team, other) is None


def test_the_last_owner_can_be_neither_demoted_nor_removed(user, team, member_of, api, client):
    owner = api(user)
    demote = owner.patch(reverse("api:team-member", args=[team.pk, user.pk]), {"role": "member"}, format="json")
    assert demote.status_code == 400 and "last owner" in demote.json()["role"][0]
    assert owner.delete(reverse("api:team-member", args=[team.pk, user.pk])).status_code == 400
    client.force_login(user)
    page = client.post(reverse("teams:action", args=[team.pk, "remove"]), {"user": user.pk}, follow=True)
    assert "last owner" in page.content.decode()
    assert role_of(team, user) == "owner"
    # with a second owner, the first may step down
    second = member_of("owner")
    assert owner.patch(reverse("api:team-member", args=[team.pk, user.pk]), {"role": "member"},
                       format="json").status_code == 200
    assert api(second).delete(reverse("api:team-member", args=[team.pk, user.pk])).status_code == 204


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_cannot_manage(role, user, team, member_of, carol, api, client):
    someone = member_of(role)
    theirs = api(someone)
    attempts = [
        theirs.post(reverse("api:team-members", args=[team.pk]), {"username": "carol"}),
        theirs.patch(reverse("api:team-member", args=[team.pk, user.pk]), {"role": "viewer"}, format="json"),
        theirs.delete(reverse("api:team-member", args=[team.pk, user.pk])),
        theirs.post(reverse("api:team-invites", args=[team.pk]), {}),
    ]
    for response in attempts:
        assert response.status_code == 403 and "teams.manage" in response.json()["detail"]
    assert theirs.get(reverse("api:team-members", args=[team.pk])).status_code == 200
    assert role_of(team, user) == "owner" and role_of(team, carol) is None and not Invite.objects.exists()

    client.force_login(someone)
    page = client.get(reverse("teams:detail", args=[team.pk])).content.decode()
    assert "alice" in page
    for button in ("Change role", "Remove", "Add member", "Make an invite link"):
        assert button not in page
    client.post(reverse("teams:action", args=[team.pk, "remove"]), {"user": user.pk})
    assert role_of(team, user) == "owner"
    client.force_login(user)
    owner_page = client.get(reverse("teams:detail", args=[team.pk])).content.decode()
    assert all(button in owner_page for button in ("Change role", "Remove", "Add member", "Make an invite link"))


@pytest.mark.parametrize("user_field", [str(2**63), str(10**30), "0", "-1", "x"])
def test_a_member_id_no_user_can_have_is_a_404_on_the_page_and_the_api(user, team, client, api, user_field):
    """A number past 64 bits would overflow the database driver (a 500) in a lookup by user id."""
    client.force_login(user)
    response = client.post(reverse("teams:action", args=[team.pk, "remove"]), {"user": user_field})
    assert response.status_code == 404
    if user_field.isdigit():
        assert api(user).get(f"/api/teams/{team.pk}/members/{user_field}/").status_code == 404


def test_an_api_url_no_route_matches_is_a_json_404(user, api, client):
    response = api(user).get("/api/cells/not-a-number/diagram.svg")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    client.force_login(user)
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
