"""Team roles and the permission table, and the team review of candidate cells (issue 16)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from webapp.teams.models import Membership
from webapp.teams.permissions import RULES, has_perm, require_perm
from webapp.teams.services import membership_add, user_create

ROLES = ["owner", "member", "viewer"]

#: Which roles hold each permission, written out by hand: the table in
#: webapp/teams/permissions.py must say the same.
EXPECTED = {
    "teams.view": {"owner", "member", "viewer"},
    "teams.manage": {"owner"},
    "searches.launch": {"owner", "member"},
    "searches.steer": {"owner", "member"},
    "transfers.launch": {"owner", "member"},
    "transfers.steer": {"owner", "member"},
    "reviews.view": {"owner", "member", "viewer"},
    "reviews.comment": {"owner", "member", "viewer"},
    "reviews.rate": {"owner", "member"},
    "reviews.tag": {"owner", "member"},
    "reviews.decide": {"owner", "member"},
    "reviews.approve": {"owner", "member"},
}


@pytest.fixture
def viewer(member_of):
    return member_of("viewer")


@pytest.fixture
def member(member_of):
    return member_of("member")


# -- roles and the rule table -------------------------------------------------------------------


def test_the_team_maker_owns_it_and_a_joiner_is_a_member(user, db):
    assert Membership.objects.get(user=user).role == "owner"
    joiner = user_create(username="carol", password="pw-123456789", team_name="team-a")
    assert Membership.objects.get(user=joiner).role == "member"


def test_the_table_is_the_expected_one():
    assert set(RULES) == set(EXPECTED)


@pytest.mark.parametrize("perm", sorted(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_each_role_and_perm(role, perm, team, member_of):
    someone = member_of(role)
    assert has_perm(someone, perm, team) is (role in EXPECTED[perm])


@pytest.mark.parametrize("perm", sorted(EXPECTED))
def test_no_perm_in_another_team(perm, team, other_user):
    assert not has_perm(other_user, perm, team)


def test_an_object_with_a_team_and_a_clear_refusal(team, viewer, make_search, user):
    search = make_search()
    assert has_perm(user, "searches.steer", search)
    with pytest.raises(PermissionDenied, match="searches.steer needs the member role or above in team 'team-a'; "
                                               "yours is viewer"):
        require_perm(viewer, "searches.steer", search)


def test_membership_add_changes_a_role(team, member):
    membership_add(team=team, user=member, role="viewer")
    member = type(member).objects.get(pk=member.pk)  # roles are cached per user object
    assert not has_perm(member, "reviews.rate", team)


def test_the_roles_migration_makes_existing_members_owners():
    from django.db.migrations.loader import MigrationLoader

    migration = MigrationLoader(None, ignore_no_migrations=True).get_migration("teams", "0002_membership_role")
    add = migration.operations[0]
    assert add.name == "role" and add.field.default == "owner"


# -- the launch and steer APIs ask the table ---------------------------------------------------


@pytest.fixture
def api_as():
    from rest_framework.test import APIClient

    def client_for(someone):
        client = APIClient()
        client.force_authenticate(someone)
        return client

    return client_for


def test_a_viewer_cannot_steer_a_search_through_the_api(api_as, viewer, make_search, queued_steps):
    search = make_search()
    response = api_as(viewer).post(f"/api/searches/{search.pk}/pause/")
    assert response.status_code == 403
    assert "searches.steer needs the member role" in response.json()["detail"]


def test_a_viewer_cannot_launch_a_search_through_the_api(api_as, viewer, tiny_proxy, queued_steps):
    response = api_as(viewer).post("/api/searches/", {
        "space": "nasnet", "strategy": "random", "dataset": "digits", "budget": 2, "parallelism": 1,
        "proxy": tiny_proxy}, format="json")
    assert response.status_code == 403
    assert "searches.launch" in response.json()["detail"]


def test_a_member_steers(api_as, member, make_search, queued_steps):
    search = make_search()
    assert api_as(member).post(f"/api/searches/{search.pk}/pause/").status_code == 200


def test_a_viewer_cannot_launch_a_transfer_through_the_api(api_as, viewer, transfer_source):
    response = api_as(viewer).post("/api/transfers/", {"trial": transfer_source.pk, "preset": "quick"},
                                   format="json")
    assert response.status_code == 403
    assert "transfers.launch" in response.json()["detail"]


# -- the review workflow ------------------------------------------------------------------------


@pytest.fixture
def cell_result(make_search, make_trial, user):
    """A cell alice's team trained (its CellResult), found by a search."""
    from webapp.cells.models import CellResult

    search = make_search()
    trial = make_trial(search, 0, reward=0.7)
    return CellResult.objects.create(cell=trial.cell, team=search.team, dataset="digits", proxy_key="p",
                                     best_trial=trial, best_reward=0.7)


@pytest.fixture
def subject(cell_result, user):
    from webapp.reviews.selectors import review_subject_get_for_user

    return review_subject_get_for_user(user=user, cell_id=cell_result.cell_id)


def test_the_review_workflow_writes_activity(subject, user, member):
    from webapp.reviews import services
    from webapp.reviews.models import Activity
    from webapp.reviews.selectors import activity_list_for_user, rating_summary, review_status_get, tag_names

    services.comment_create(user=user, subject=subject, body="Looks **fast**")
    services.rating_set(user=user, subject=subject, stars=4)
    services.rating_set(user=member, subject=subject, stars=2)
    services.rating_set(user=member, subject=subject, stars=3)  # replaces the member's 2
    services.tag_add(user=user, subject=subject, name="Fast")
    services.tag_add(user=user, subject=subject, name="fast")  # once
    services.tag_add(user=user, subject=subject, name="tiny")
    services.tag_remove(user=user, subject=subject, name="tiny")
    services.review_status_set(user=member, subject=subject, status="shortlisted")
    services.review_status_set(user=user, subject=subject, status="approved", note="go")

    assert rating_summary(subject=subject, user=member) == {"mean": 3.5, "count": 2, "mine": 3}
    assert tag_names(subject=subject) == ["fast"]
    assert review_status_get(subject=subject).status == "approved"
    verbs = list(Activity.objects.order_by("id").values_list("verb", flat=True))
    assert verbs == ["commented", "rated", "rated", "rated", "tagged", "tagged", "untagged", "status", "status"]
    row = Activity.objects.last()
    assert (row.actor, row.team, row.cell, row.search) == (user, subject.team, subject.cell, subject.search)
    assert row.detail == {"from": "shortlisted", "to": "approved", "note": "go"}
    # the feeds: per cell, per search, per team
    assert activity_list_for_user(user=user, cell_id=subject.cell.pk).count() == 9
    assert activity_list_for_user(user=user, search_id=subject.search.pk).count() == 9
    assert activity_list_for_user(user=user, team_id=subject.team.pk).count() == 9


def test_rejecting_needs_a_note_and_transitions_are_checked(subject, user):
    from django.core.exceptions import ValidationError

    from webapp.reviews import services

    with pytest.raises(ValidationError) as refused:
        services.review_status_set(user=user, subject=subject, status="rejected", note="  ")
    assert "note" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        services.review_status_set(user=user, subject=subject, status="approved")
    assert "status" in refused.value.message_dict  # a candidate is shortlisted first
    assert services.review_status_set(user=user, subject=subject, status="rejected", note="too slow").note == \
        "too slow"


def test_a_viewer_comments_but_decides_nothing(subject, viewer):
    from webapp.reviews import services

    services.comment_create(user=viewer, subject=subject, body="hm")
    for call in (lambda: services.rating_set(user=viewer, subject=subject, stars=3),
                 lambda: services.tag_add(user=viewer, subject=subject, name="x"),
                 lambda: services.review_status_set(user=viewer, subject=subject, status="shortlisted")):
        with pytest.raises(PermissionDenied):
            call()


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=https://evil.example></iframe>",
    "<scr<script>ipt>alert(1)</script>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "[x](https://ok.example \"onmouseover=alert(1)\")",
    "<<script>script>alert(1)<</script>/script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "```\n<script>alert(1)</script>\n```",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_markdown_output_is_inert(payload):
    import re

    from webapp.reviews.markdown import render_markdown

    out = render_markdown(payload)
    lowered = out.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<svg" not in lowered
    assert "<iframe" not in lowered and "<style" not in lowered and "<div" not in lowered
    assert not re.search(r"<[^>]+\son\w+\s*=", lowered)  # no event handler attribute on a tag
    # within a real tag (text shows escaped, as &lt;…)
    assert not re.search(r"<[^>]*(href|src)\s*=\s*\"?\s*(javascript|data|vbscript):", lowered)


def test_markdown_still_renders_markdown():
    from webapp.reviews.markdown import render_markdown

    out = render_markdown("**bold** and [a link](https://example.com)")
    assert "<strong>bold</strong>" in out
    assert 'href="https://example.com"' in out and 'rel="noopener noreferrer nofollow"' in out


def test_length_limits_are_field_errors(subject, user):
    from django.core.exceptions import ValidationError

    from webapp.reviews import services
    from webapp.reviews.models import COMMENT_MAX_LENGTH, TAG_MAX_LENGTH

    for call, field in ((lambda: services.comment_create(user=user, subject=subject,
                                                         body="x" * (COMMENT_MAX_LENGTH + 1)), "body"),
                        (lambda: services.comment_create(user=user, subject=subject, body=" "), "body"),
                        (lambda: services.tag_add(user=user, subject=subject, name="x" * (TAG_MAX_LENGTH + 1)), "name"),
                        (lambda: services.tag_add(user=user, subject=subject, name="<b>"), "name"),
                        (lambda: services.rating_set(user=user, subject=subject, stars=6), "stars")):
        with pytest.raises(ValidationError) as refused:
            call()
        assert field in refused.value.message_dict


def test_comments_and_tags_are_rate_limited_per_user(subject, user, member, settings):
    from webapp.reviews import services

    settings.CELLSEARCH_REVIEW_RATE_LIMIT = 3
    services.comment_create(user=user, subject=subject, body="1")
    services.tag_add(user=user, subject=subject, name="a")
    services.comment_create(user=user, subject=subject, body="2")
    with pytest.raises(services.ReviewRateLimited, match="at most 3 comments and tags in 60 seconds"):
        services.comment_create(user=user, subject=subject, body="3")
    services.comment_create(user=member, subject=subject, body="someone else may")


# -- the API ----------------------------------------------------------------------------------


def test_api_review_round_trip(api_as, cell_result, user):
    api = api_as(user)
    base = f"/api/cells/{cell_result.cell_id}/review/"
    response = api.post(base + "comments/", {"body": "nice <script>x</script>"}, format="json")
    assert response.status_code == 201 and "<script>" not in response.json()["html"]
    assert api.put(base + "rating/", {"stars": 5}, format="json").json()["rating"] == {"mean": 5.0, "count": 1,
                                                                                        "mine": 5}
    assert api.post(base + "tags/", {"name": "fast"}, format="json").json()["tags"] == ["fast"]
    assert api.delete(base + "tags/fast/").json()["tags"] == []
    assert api.post(base + "status/", {"status": "shortlisted"}, format="json").json()["status"] == "shortlisted"
    response = api.post(base + "status/", {"status": "rejected"}, format="json")
    assert response.status_code == 400 and "note" in response.json()
    review = api.post(base + "status/", {"status": "approved"}, format="json").json()
    assert review["status"] == "approved" and review["decision"] and review["permissions"]["reviews_approve"]
    assert [row["verb"] for row in api.get(base + "activity/").json()["results"]][0] == "status"
    assert api.get(base + "comments/").json()["count"] == 1
    feed = api.get("/api/reviews/activity/", {"search": cell_result.best_trial.search_id}).json()
    assert feed["count"] == 6  # comment, rating, tag, untag, shortlist, approve (the refused reject wrote nothing)


def test_api_viewer_is_403_with_a_clear_detail(api_as, cell_result, viewer):
    api = api_as(viewer)
    base = f"/api/cells/{cell_result.cell_id}/review/"
    assert api.post(base + "comments/", {"body": "may comment"}, format="json").status_code == 201
    for response in (api.put(base + "rating/", {"stars": 3}, format="json"),
                     api.post(base + "tags/", {"name": "x"}, format="json"),
                     api.post(base + "status/", {"status": "shortlisted"}, format="json")):
        assert response.status_code == 403
        assert "needs the member role or above in team 'team-a'; yours is viewer" in response.json()["detail"]


def test_api_another_teams_cell_is_404(api_as, cell_result, other_user):
    api = api_as(other_user)
    base = f"/api/cells/{cell_result.cell_id}/review/"
    assert api.post(base + "status/", {"status": "shortlisted"}, format="json").status_code == 404
    assert api.get(base).status_code == 404
    assert api.post(base + "comments/", {"body": "x"}, format="json").status_code == 404
    assert api.get("/api/reviews/activity/", {"team": cell_result.team_id}).json()["count"] == 0


def test_api_rate_limit_is_429(api_as, cell_result, user, settings):
    settings.CELLSEARCH_REVIEW_RATE_LIMIT = 1
    api = api_as(user)
    base = f"/api/cells/{cell_result.cell_id}/review/"
    assert api.post(base + "comments/", {"body": "1"}, format="json").status_code == 201
    response = api.post(base + "comments/", {"body": "2"}, format="json")
    assert response.status_code == 429 and "at most 1 comments and tags" in response.json()["detail"]
    assert api.post(base + "comments/", {"body": "x" * 6000}, format="json").status_code == 400


# -- the page -----------------------------------------------------------------------------------


def test_the_review_page_flow(client, cell_result, user):
    client.force_login(user)
    url = f"/cells/{cell_result.cell.cell_hash}/review/"
    assert client.post(url + "comment/", {"body": "**ok** <script>alert(1)</script>"}).status_code == 302
    client.post(url + "rate/", {"stars": "4"})
    client.post(url + "tag/", {"name": "fast"})
    client.post(url + "status/", {"status": "shortlisted"})
    client.post(url + "status/", {"status": "approved"})
    page = client.get(url).content.decode()
    assert "<strong>ok</strong>" in page and "<script>alert(1)" not in page
    assert "4.0 / 5" in page and "fast" in page and "Approved" in page
    assert f"/transfers/new/?cell={cell_result.cell.cell_hash}&amp;decision=" in page
    assert "Train at full size…" in page


def test_the_review_page_shows_a_viewer_no_decision_buttons(client, cell_result, viewer):
    client.force_login(viewer)
    url = f"/cells/{cell_result.cell.cell_hash}/review/"
    page = client.get(url).content.decode()
    assert "Shortlist" not in page and "Add tag" not in page and "Comment</button>" in page
    client.post(url + "status/", {"status": "shortlisted"}, follow=True)
    assert "Candidate" in client.get(url).content.decode()


def test_the_review_page_of_another_teams_cell_is_404(client, cell_result, other_user):
    client.force_login(other_user)
    url = f"/cells/{cell_result.cell.cell_hash}/review/"
    assert client.get(url).status_code == 404
    assert client.post(url + "status/", {"status": "shortlisted"}).status_code == 404


def test_the_activity_pages_of_a_search_and_a_team(client, subject, user, other_user):
    from webapp.reviews import services

    services.comment_create(user=user, subject=subject, body="nice")
    services.rating_set(user=user, subject=subject, stars=5)
    client.force_login(user)
    search_page = client.get(f"/searches/{subject.search.pk}/").content.decode()
    assert f'href="/reviews/activity/?search={subject.search.pk}"' in search_page
    team_page = client.get(f"/teams/{subject.team.pk}/").content.decode()
    assert f'href="/reviews/activity/?team={subject.team.pk}"' in team_page
    for query in (f"search={subject.search.pk}", f"team={subject.team.pk}", ""):
        feed = client.get(f"/reviews/activity/?{query}").content.decode()
        assert "alice rated 5/5" in feed and "alice commented" in feed and subject.cell.cell_hash[:12] in feed
    client.force_login(other_user)  # another team's activity is never shown
    for query in (f"search={subject.search.pk}", f"team={subject.team.pk}", ""):
        assert "alice rated" not in client.get(f"/reviews/activity/?{query}").content.decode()
