"""The review queue (/reviews/, /api/reviews/queue/) and the side-by-side of 2–4 cells
(/reviews/compare/, /api/reviews/compare/) (issue 16)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from webapp.cells.models import Cell, CellResult
from webapp.reviews.models import CellTag, Comment, Rating, ReviewStatus, Tag
from webapp.teams.services import user_create


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def make_result(make_search, make_trial, add_genotype):
    """`make_result(reward, team_search=None)`: a new cell trained once by a search, and its team result."""
    made = iter(range(1000))
    searches: dict = {}

    def make(reward: float, *, search=None, params: int | None = 1000):
        n = next(made)
        search = search or searches.setdefault("default", make_search())
        cell = Cell.objects.create(cell_hash=f"{n:064x}", space="nasnet", genotype=add_genotype)
        trial = make_trial(search, n, cell=cell, reward=reward, params=params, mult_adds=params and params * 40,
                           epochs=[{"epoch": 0, "val_acc": reward - 0.1}, {"epoch": 1, "val_acc": reward}])
        return CellResult.objects.create(cell=cell, team=search.team, dataset="digits", proxy_key="p",
                                         best_trial=trial, best_reward=reward, params=params,
                                         mult_adds=params and params * 40)

    return make


@pytest.fixture
def queue(make_result, user):
    """Six cells of alice's team, rewards 0.1 … 0.6; 0.6 approved, 0.5 rejected, 0.4 shortlisted and
    tagged `fast`, rated 4 and 5, with two comments; the others have no review row (candidates)."""
    results = [make_result(r / 10) for r in range(1, 7)]
    by_reward = {round(r.best_reward * 10): r for r in results}
    team = results[0].team
    for reward, status in ((6, "approved"), (5, "rejected"), (4, "shortlisted"), (3, "candidate")):
        ReviewStatus.objects.create(team=team, cell=by_reward[reward].cell, status=status)
    member = user_create(username="carol", password="pw-123456789", team_name=team.name)
    shortlisted = by_reward[4].cell
    Rating.objects.create(team=team, cell=shortlisted, user=user, stars=4)
    Rating.objects.create(team=team, cell=shortlisted, user=member, stars=5)
    Comment.objects.create(team=team, cell=shortlisted, author=user, body="looks **good**")
    Comment.objects.create(team=team, cell=shortlisted, author=member, body="<script>alert(1)</script>")
    CellTag.objects.create(tag=Tag.objects.create(team=team, name="fast"), cell=shortlisted)
    return by_reward


def rewards(rows) -> list[float]:
    return [row["best_reward"] for row in rows]


# -- the queue -------------------------------------------------------------------------------------


def test_queue_lists_cells_awaiting_review_best_first(api, queue):
    body = api.get("/api/reviews/queue/").json()
    assert body["count"] == 4
    assert rewards(body["results"]) == [0.4, 0.3, 0.2, 0.1]  # approved and rejected are done
    top = body["results"][0]
    assert top["status"] == "shortlisted" and top["tags"] == ["fast"] and top["comment_count"] == 2
    assert top["rating"] == {"mean": 4.5, "count": 2}
    assert top["params"] == 1000 and top["mult_adds"] == 40000
    assert top["cell_hash"] == queue[4].cell.cell_hash
    assert top["review_url"] == f"/cells/{queue[4].cell.cell_hash}/review/?team={queue[4].team_id}"
    assert [r["status"] for r in body["results"][1:]] == ["candidate"] * 3  # no row counts as a candidate
    assert body["results"][1]["rating"] == {"mean": None, "count": 0}


def test_queue_filters(api, queue, make_result, make_search):
    assert rewards(api.get("/api/reviews/queue/?status=shortlisted").json()["results"]) == [0.4]
    assert rewards(api.get("/api/reviews/queue/?status=candidate").json()["results"]) == [0.3, 0.2, 0.1]
    assert rewards(api.get("/api/reviews/queue/?tag=fast").json()["results"]) == [0.4]
    assert api.get("/api/reviews/queue/?tag=slow").json()["count"] == 0
    other_search = make_search()
    make_result(0.9, search=other_search)
    assert rewards(api.get(f"/api/reviews/queue/?search={other_search.pk}").json()["results"]) == [0.9]
    assert api.get("/api/reviews/queue/?status=approved").status_code == 400


def test_queue_paginates(api, queue):
    first = api.get("/api/reviews/queue/?limit=3").json()
    assert rewards(first["results"]) == [0.4, 0.3, 0.2] and first["next"]
    assert rewards(api.get("/api/reviews/queue/?limit=3&offset=3").json()["results"]) == [0.1]


def test_queue_shows_no_other_teams_cells(queue, other_user):
    client = APIClient()
    client.force_authenticate(other_user)
    assert client.get("/api/reviews/queue/").json()["count"] == 0


def test_queue_queries_are_bounded(api, client, user, make_result, queue, django_assert_max_num_queries):
    team = queue[4].team
    for i in range(30):
        result = make_result(0.01 + i / 1000)
        CellTag.objects.create(tag=Tag.objects.get_or_create(team=team, name=f"t{i % 3}")[0], cell=result.cell)
        Comment.objects.create(team=team, cell=result.cell, author=user, body="x")
    with django_assert_max_num_queries(6):  # auth, team ids, count, page, tags
        body = api.get("/api/reviews/queue/?limit=50").json()
    assert body["count"] == 34 and all(r["tags"] and r["comment_count"] == 1 for r in body["results"][4:])
    client.force_login(user)
    with django_assert_max_num_queries(11):  # bounded whatever the rows; the nav asks the roles once
        page = client.get("/reviews/")
    assert page.status_code == 200


def test_queue_page(client, user, queue):
    client.force_login(user)
    page = client.get("/reviews/?status=shortlisted").content.decode()
    assert queue[4].cell.cell_hash in page and queue[3].cell.cell_hash not in page
    assert f'href="/cells/{queue[4].cell.cell_hash}/review/?team=' in page
    assert 'name="cells"' in page and 'action="/reviews/compare/"' in page
    assert 'href="/reviews/"' in client.get("/").content.decode()  # the nav link


# -- the side-by-side ------------------------------------------------------------------------------


def _hashes(*results) -> str:
    return ",".join(r.cell.cell_hash for r in results)


def test_compare_two_to_four_cells(api, queue, user):
    from webapp.transfers.models import Transfer

    a, b, c, d = queue[4], queue[3], queue[2], queue[1]
    Transfer.objects.create(team=a.team, owner=user, cell=a.cell, genotype=a.cell.genotype, cell_hash=a.cell.cell_hash,
                            status="finished", best_val_acc=0.91, test_acc=0.9, dataset="digits")
    Transfer.objects.create(team=a.team, owner=user, cell=a.cell, genotype=a.cell.genotype, cell_hash=a.cell.cell_hash,
                            status="running", best_val_acc=0.5)
    body = api.get(f"/api/reviews/compare/?cells={_hashes(a, b)}").json()
    first, second = body["cells"]
    assert first["cell_hash"] == a.cell.cell_hash and second["cell_hash"] == b.cell.cell_hash
    assert first["val_acc"] == 0.4 and first["epochs"] == [{"epoch": 0, "val_acc": pytest.approx(0.3)},
                                                          {"epoch": 1, "val_acc": 0.4}]
    assert first["params"] == 1000 and first["mult_adds"] == 40000
    assert first["rating"] == {"mean": 4.5, "count": 2} and first["status"] == "shortlisted"
    assert first["tags"] == ["fast"] and first["diagram_url"] == f"/api/cells/{a.cell_id}/diagram.svg"
    assert [t["test_acc"] for t in first["transfers"]] == [0.9]  # the finished one only
    assert second["transfers"] == [] and second["status"] == "candidate"
    htmls = [m["html"] for m in first["comments"]]
    assert "<strong>good</strong>" in htmls[1] and "<script" not in htmls[0]
    assert len(api.get(f"/api/reviews/compare/?cells={_hashes(a, b, c, d)}").json()["cells"]) == 4


def test_compare_errors(api, queue, other_user, make_trial):
    from webapp.searches.services import search_create

    a = queue[4]
    one = api.get(f"/api/reviews/compare/?cells={_hashes(a)}")
    assert one.status_code == 400 and "2 to 4" in one.json()["cells"][0]
    assert api.get(f"/api/reviews/compare/?cells={_hashes(a, a)}").status_code == 400  # the same cell twice
    five = api.get(f"/api/reviews/compare/?cells={_hashes(*[queue[i] for i in range(1, 6)])}")
    assert five.status_code == 400
    assert api.get("/api/reviews/compare/").status_code == 400
    theirs = search_create(user=other_user, space="nasnet", strategy="random", dataset="digits", budget=4,
                           parallelism=2, seed=0, proxy={"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128})
    cell = Cell.objects.create(cell_hash="f" * 64, space="nasnet", genotype=a.cell.genotype)
    trial = make_trial(theirs, 0, cell=cell, reward=0.9)
    CellResult.objects.create(cell=cell, team=theirs.team, dataset="digits", proxy_key="p", best_trial=trial,
                              best_reward=0.9)
    assert api.get(f"/api/reviews/compare/?cells={_hashes(a)},{cell.cell_hash}").status_code == 404
    assert api.get(f"/api/reviews/compare/?cells={cell.cell_hash},{_hashes(a)}").status_code == 404


def test_compare_queries_are_bounded(api, queue, django_assert_max_num_queries):
    with django_assert_max_num_queries(14):
        response = api.get(f"/api/reviews/compare/?cells={_hashes(queue[4], queue[3], queue[2], queue[1])}")
    assert response.status_code == 200


def test_compare_page(client, user, queue):
    client.force_login(user)
    a, b = queue[4], queue[3]
    page = client.get(f"/reviews/compare/?cells={a.cell.cell_hash}&cells={b.cell.cell_hash}")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"/api/cells/{a.cell_id}/diagram.svg" in text and "<strong>good</strong>" in text
    assert "<script>alert" not in text and "<polyline" in text
    assert client.get(f"/reviews/compare/?cells={a.cell.cell_hash}").status_code == 400
    assert client.get(f"/reviews/compare/?cells={a.cell.cell_hash},{'e' * 64}").status_code == 404


def test_the_schema_names_the_queue_and_compare(tmp_path):
    import yaml
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]
    assert {"/api/reviews/queue/", "/api/reviews/compare/"} <= set(paths)


def test_the_queue_count_matches_its_rows(user, queue, make_result, other_user):
    """review_queue_count counts from the review tables' side; it must agree with the rows, with a
    second team of alice's whose statuses and tags are its own."""
    from webapp.reviews.selectors import review_queue_count, review_queue_for_user
    from webapp.teams.services import membership_add

    second = other_user.teams.get()
    shared = queue[4]  # the same cell in the second team: rejected there
    other_result = make_result(0.95)  # moved to the second team: shortlisted and tagged there
    membership_add(team=second, user=user, role="member")
    other_result.team = second
    other_result.save()
    ReviewStatus.objects.create(team=second, cell=other_result.cell, status="shortlisted")
    CellTag.objects.create(tag=Tag.objects.create(team=second, name="fast"), cell=other_result.cell)
    CellResult.objects.create(cell=shared.cell, team=second, dataset="digits", proxy_key="p",
                              best_trial=shared.best_trial, best_reward=0.45)
    ReviewStatus.objects.create(team=second, cell=shared.cell, status="rejected")
    searches = [None, shared.best_trial.search_id]
    for status in (None, "candidate", "shortlisted"):
        for tag in (None, "fast", "none"):
            for search_id in searches:
                for team_id in (None, second.pk):
                    filters = {"status": status, "tag": tag, "search_id": search_id, "team_id": team_id}
                    rows = review_queue_for_user(user=user, **filters)
                    assert review_queue_count(user=user, **filters) == rows.count(), filters
    assert review_queue_count(user=user) == 5  # 4 of team-a, the shortlisted one of the second team
