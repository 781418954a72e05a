"""The pages ask the permission table as the API does (issue 16): a viewer can neither launch
nor steer a search or a transfer from the pages and sees none of their buttons, a member can;
a user in several teams picks the search's team (page and API); a transfer launched from a
review decision links to it, and the decision's activity row knows the transfer."""

from __future__ import annotations

import pytest

from webapp.reviews import services as review_services
from webapp.reviews.selectors import ReviewSubject
from webapp.searches.models import Search
from webapp.teams.models import Membership, Team
from webapp.teams.services import membership_add, user_create
from webapp.transfers.models import Transfer

pytestmark = pytest.mark.django_db

VALID_FORM = {
    "name": "roles demo", "space": "nasnet", "strategy": "random", "dataset": "digits", "budget": "3",
    "parallelism": "1", "epochs": "1", "cells": "1", "filters": "48", "batch_size": "64", "seed": "0",
    "strategy_options": "", "space_options": "",
}
SEARCH_API = {"space": "nasnet", "strategy": "random", "dataset": "digits", "budget": 3,
              "proxy": {"epochs": 1, "cells": 1, "filters": 48}}
TRANSFER_FORM = {"name": "full size", "preset": "quick", "dataset": "digits"}


@pytest.fixture
def viewer(team):
    viewer = user_create(username="vera", password="vera-password-1", team_name="vera-own")
    Membership.objects.filter(user=viewer).delete()  # only in team-a, as a viewer
    membership_add(team=team, user=viewer, role=Membership.Role.VIEWER)
    return viewer


@pytest.fixture
def member(team):
    member = user_create(username="max", password="max-password-1", team_name="max-own")
    Membership.objects.filter(user=member).delete()
    membership_add(team=team, user=member, role=Membership.Role.MEMBER)
    return member


@pytest.fixture
def search(user, team) -> Search:
    return Search.objects.create(team=team, owner=user, budget=10, proxy={"epochs": 1}, proxy_key="p",
                                 strategy="random", status=Search.Status.RUNNING)


@pytest.fixture
def trial(search, make_trial):
    """A finished trial, its cell among the team's Best cells."""
    from webapp.cells.services import cell_result_update

    trial = make_trial(search, 0, reward=0.8)
    cell_result_update(trial=trial)
    return trial


@pytest.fixture
def transfer(user, team, trial) -> Transfer:
    return Transfer.objects.create(team=team, owner=user, cell=trial.cell, genotype=trial.genotype,
                                   cell_hash=trial.cell_hash, source_trial=trial, source_search=trial.search,
                                   status=Transfer.Status.RUNNING, config={"epochs": 2})


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


# -- a viewer neither launches nor steers, and sees no buttons ----------------------------------


def test_viewer_sees_no_launch_or_steer_buttons(client, viewer, search, transfer):
    client.force_login(viewer)
    searches = client.get("/").content.decode()
    assert 'id="new-search"' not in searches and "Launch your first search" not in searches
    page = client.get(f"/searches/{search.pk}/").content.decode()
    assert f"/searches/{search.pk}/pause/" not in page and f"/searches/{search.pk}/cancel/" not in page
    live = client.get(f"/searches/{search.pk}/live/").content.decode()
    assert f"/searches/{search.pk}/pause/" not in live
    page = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert 'id="transfer-pause"' not in page and 'id="transfer-cancel"' not in page
    assert 'id="transfer-pause"' not in client.get(f"/transfers/{transfer.pk}/live/").content.decode()
    # nor the navigation's "New search", nor "Train at full size…" on a trial or Best cells
    assert 'href="/searches/new/"' not in searches
    assert "Train at full size" not in client.get(f"/trials/{transfer.source_trial_id}/").content.decode()
    assert "Train at full size" not in client.get("/cells/").content.decode()


def test_member_sees_the_buttons(client, member, search, transfer):
    client.force_login(member)
    searches = client.get("/").content.decode()
    assert 'id="new-search"' in searches and 'href="/searches/new/"' in searches
    assert "Train at full size" in client.get(f"/trials/{transfer.source_trial_id}/").content.decode()
    assert "Train at full size" in client.get("/cells/").content.decode()
    page = client.get(f"/searches/{search.pk}/").content.decode()
    assert f"/searches/{search.pk}/pause/" in page and f"/searches/{search.pk}/cancel/" in page
    page = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert 'id="transfer-pause"' in page and 'id="transfer-cancel"' in page


def test_viewer_cannot_launch_a_search_from_the_page(client, viewer):
    client.force_login(viewer)
    response = client.get("/searches/new/", follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert "searches.launch needs the member role" in _messages(response) and "yours is viewer" in _messages(response)
    response = client.post("/searches/new/", VALID_FORM, follow=True)
    assert "searches.launch" in _messages(response)
    assert not Search.objects.filter(name="roles demo").exists()


def test_viewer_cannot_steer_a_search_or_a_transfer_from_the_page(client, viewer, search, transfer):
    client.force_login(viewer)
    for action in ("pause", "cancel"):
        response = client.post(f"/searches/{search.pk}/{action}/", follow=True)
        assert response.redirect_chain[-1][0] == f"/searches/{search.pk}/"
        assert f"Could not {action} this search: searches.steer needs the member role" in _messages(response)
        response = client.post(f"/transfers/{transfer.pk}/{action}/", follow=True)
        assert f"Could not {action} this transfer: transfers.steer needs the member role" in _messages(response)
    search.refresh_from_db()
    transfer.refresh_from_db()
    assert search.status == Search.Status.RUNNING
    assert transfer.status == Transfer.Status.RUNNING and not transfer.pause_requested


def test_viewer_cannot_launch_a_transfer_from_the_page(client, viewer, trial):
    client.force_login(viewer)
    response = client.get(f"/transfers/new/?trial={trial.pk}", follow=True)
    assert response.redirect_chain[-1][0] == "/transfers/"
    assert "transfers.launch needs the member role" in _messages(response)
    response = client.post("/transfers/new/", {"trial": trial.pk, **TRANSFER_FORM}, follow=True)
    assert "transfers.launch" in _messages(response)
    assert not Transfer.objects.exists()


def test_member_launches_and_steers_from_the_pages(client, member, search, trial):
    client.force_login(member)
    response = client.post("/searches/new/", VALID_FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Search.objects.get(name="roles demo")
    assert created.team.name == "team-a" and created.owner == member
    response = client.post(f"/searches/{search.pk}/pause/", follow=True)
    assert "Search paused." in _messages(response)
    response = client.post("/transfers/new/", {"trial": trial.pk, **TRANSFER_FORM})
    assert response.status_code == 302
    transfer = Transfer.objects.get()
    assert transfer.owner == member and transfer.decision is None
    response = client.post(f"/transfers/{transfer.pk}/cancel/", follow=True)
    assert "Transfer cancelled." in _messages(response)


# -- the team picker ----------------------------------------------------------------------------


@pytest.fixture
def two_teams_user(user, other_user):
    """alice: owner of team-a, member of team-b."""
    membership_add(team=Team.objects.get(name="team-b"), user=user, role=Membership.Role.MEMBER)
    return user


def test_the_form_asks_a_user_in_several_teams(client, two_teams_user):
    client.force_login(two_teams_user)
    page = client.get("/searches/new/").content.decode()
    assert 'name="team"' in page and "team-a" in page and "team-b" in page
    response = client.post("/searches/new/", VALID_FORM)
    assert response.status_code == 200
    assert "pick the one this search belongs to" in response.context["form"].errors["team"][0]
    stranger = Team.objects.create(name="elsewhere")
    response = client.post("/searches/new/", {**VALID_FORM, "team": stranger.pk})
    assert response.status_code == 200 and "team" in response.context["form"].errors
    assert "elsewhere" not in response.content.decode()
    team_b = Team.objects.get(name="team-b")
    response = client.post("/searches/new/", {**VALID_FORM, "team": team_b.pk})
    assert response.status_code == 302
    assert Search.objects.get(name="roles demo").team == team_b


def test_the_form_offers_only_teams_where_the_role_may_launch(client, user, other_user):
    team_b = Team.objects.get(name="team-b")
    membership_add(team=team_b, user=user, role=Membership.Role.VIEWER)
    client.force_login(user)
    page = client.get("/searches/new/").content.decode()
    assert 'name="team"' not in page  # one team to launch in: no question
    response = client.post("/searches/new/", {**VALID_FORM, "team": team_b.pk})
    assert response.status_code == 302
    assert Search.objects.get(name="roles demo").team.name == "team-a"


def test_a_user_in_one_team_is_not_asked(client, user):
    client.force_login(user)
    assert 'name="team"' not in client.get("/searches/new/").content.decode()
    assert client.post("/searches/new/", VALID_FORM).status_code == 302
    assert Search.objects.get(name="roles demo").team.name == "team-a"


def test_the_api_takes_the_team(client, two_teams_user):
    client.force_login(two_teams_user)
    response = client.post("/api/searches/", SEARCH_API, content_type="application/json")
    assert response.status_code == 400 and "several teams" in response.json()["team"][0]
    stranger = Team.objects.create(name="elsewhere")
    response = client.post("/api/searches/", {**SEARCH_API, "team": stranger.pk}, content_type="application/json")
    assert response.status_code == 400 and response.json()["team"] == [f"no team of yours has id {stranger.pk}"]
    team_b = Team.objects.get(name="team-b")
    response = client.post("/api/searches/", {**SEARCH_API, "team": team_b.pk}, content_type="application/json")
    assert response.status_code == 201 and response.json()["team"] == "team-b"


def test_the_api_default_team_and_a_viewer_team(client, user, other_user):
    client.force_login(user)
    response = client.post("/api/searches/", SEARCH_API, content_type="application/json")
    assert response.status_code == 201 and response.json()["team"] == "team-a"
    team_b = Team.objects.get(name="team-b")
    membership_add(team=team_b, user=user, role=Membership.Role.VIEWER)
    response = client.post("/api/searches/", {**SEARCH_API, "team": team_b.pk}, content_type="application/json")
    assert response.status_code == 403 and "searches.launch" in response.json()["detail"]


# -- the decision link, both ways ---------------------------------------------------------------


@pytest.fixture
def approval(user, team, trial):
    subject = ReviewSubject(team=team, cell=trial.cell, search=trial.search)
    review_services.review_status_set(user=user, subject=subject, status="shortlisted")
    review_services.review_status_set(user=user, subject=subject, status="approved")
    from webapp.reviews.models import Activity

    return Activity.objects.filter(team=team, cell=trial.cell, detail__to="approved").latest("id")


def test_a_transfer_launched_from_a_decision_links_back(client, user, member, team, trial, approval):
    client.force_login(member)
    url = f"/transfers/new/?cell={trial.cell_hash}&decision={approval.pk}"
    page = client.get(url).content.decode()
    assert f'name="decision" value="{approval.pk}"' in page and 'id="transfer-decision"' in page
    response = client.post(url, {"trial": trial.pk, "decision": approval.pk, **TRANSFER_FORM})
    assert response.status_code == 302, response.content.decode()[:2000]
    transfer = Transfer.objects.get()
    assert transfer.decision == approval
    assert list(approval.transfers.all()) == [transfer]  # the review side reads it back
    page = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert "Launched from the decision of alice on" in page
    assert f"/cells/{trial.cell_hash}/review/?team={team.pk}" in page


def test_a_decision_through_the_api(client, member, trial, approval):
    client.force_login(member)
    body = {"cell_hash": trial.cell_hash, "decision": approval.pk, "preset": "quick"}
    response = client.post("/api/transfers/", body, content_type="application/json")
    assert response.status_code == 201, response.json()
    assert response.json()["decision"] == approval.pk
    assert Transfer.objects.get().decision == approval


def test_a_decision_that_is_not_an_approval_or_not_yours_is_refused(client, member, other_user, trial, approval,
                                                                    make_trial):
    client.force_login(member)
    comment = review_services.comment_create(user=member, subject=ReviewSubject(
        team=approval.team, cell=approval.cell, search=None), body="nice")
    from webapp.reviews.models import Activity

    not_approval = Activity.objects.filter(verb="commented").latest("id")
    assert comment is not None
    response = client.post("/api/transfers/", {"trial": trial.pk, "decision": not_approval.pk, "preset": "quick"},
                           content_type="application/json")
    assert response.status_code == 400 and "no approval of this cell" in response.json()["decision"][0]
    # another team's approval: the same answer as none, nothing about it leaks
    team_b = Team.objects.get(name="team-b")
    other_search = Search.objects.create(team=team_b, owner=other_user, budget=1, proxy={}, proxy_key="p",
                                         strategy="random")
    other_trial = make_trial(other_search, 0, cell=trial.cell)
    subject = ReviewSubject(team=team_b, cell=other_trial.cell, search=other_search)
    review_services.review_status_set(user=other_user, subject=subject, status="shortlisted")
    review_services.review_status_set(user=other_user, subject=subject, status="approved")
    theirs = Activity.objects.filter(team=team_b, detail__to="approved").latest("id")
    response = client.post("/api/transfers/", {"cell_hash": trial.cell_hash, "decision": theirs.pk,
                                               "preset": "quick"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["decision"] == [f"no review decision of your teams has id {theirs.pk}"]
    assert client.get(f"/transfers/new/?cell={trial.cell_hash}&decision={theirs.pk}").status_code == 404
    assert not Transfer.objects.exists()
