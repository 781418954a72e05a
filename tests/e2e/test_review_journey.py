"""Issue 16's journey in a real browser against a real server, Redis and Celery worker: two
members of one team comment on, rate, tag and shortlist a cell (each in their own browser,
logged in through the form), an owner approves it and launches its transfer from the decision,
and a user of another team can see none of it.

The cell comes from a one-trial search the worker really trains (a few seconds). Comments are
Markdown: `**bold**` renders as <strong>, a `<script>` shows as inert text. The page shows the
mean rating, both comments and the activity feed; the review queue follows the status (candidate,
shortlisted, then gone once approved); the transfer page says it was launched from the decision.

Screenshots go to $CELLSEARCH_E2E_SCREENSHOTS (default /tmp): e2e-review-member1.png,
e2e-review-queue.png, e2e-review-member2.png, e2e-review-approved.png, e2e-review-transfer-form.png,
e2e-review-transfer.png, e2e-review-other-team.png.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_ended

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(os.environ.get("CELLSEARCH_E2E_SCREENSHOTS", "/tmp"))
#: How long the worker may take for the one-trial search, and for the tiny transfer.
SEARCH_TIMEOUT_S = 120
TRANSFER_TIMEOUT_S = 150
PASSWORD = "e2e-password-123"
SCRIPT = "<script>window.__pwned = 1</script>"


def _new_page(browser, pages: list):
    """A page in a fresh browser context (its own cookies), set up like the `page` fixture."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.on("console", lambda msg: page.js_errors.append(msg.text) if msg.type == "error" else None)
    pages.append(page)
    return page


def _log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _post_and_reload(page, selector: str) -> None:
    """Click a review form's submit button: it posts and comes back to the review page."""
    with page.expect_navigation():
        page.click(selector)
    assert "/review/" in page.url
    assert page.locator(".messages .message-error").count() == 0, page.locator(".messages").all_inner_texts()


def _queue_row(page, cell_hash: str):
    return page.locator("#queue-table tbody tr").filter(has_text=cell_hash[:10])


def test_two_members_review_an_owner_approves_and_launches_another_team_sees_nothing(
        page, live_server, celery_worker_process, chromium_browser):
    from webapp.reviews.models import Activity, ReviewStatus
    from webapp.searches.models import Search
    from webapp.searches.services import search_create
    from webapp.teams.models import Team
    from webapp.teams.services import member_invite, user_create
    from webapp.transfers.models import Transfer
    from webapp.trials.models import Trial

    started = time.monotonic()
    base = live_server.url

    # -- the people: an owner and two members of team A, a user of team B -------------------------
    owner = user_create(username="olga", password=PASSWORD, team_name="team-a")  # makes it: owner
    user_create(username="nina", password=PASSWORD, team_name="team-a")  # joins it: member
    user_create(username="omar", password=PASSWORD)  # a team of his own, then invited into A
    team_a = Team.objects.get(name="team-a")
    member_invite(actor=owner, team=team_a, username="omar")
    user_create(username="bea", password=PASSWORD, team_name="team-b")

    # -- a found cell of team A: a one-trial search the worker really trains ----------------------
    search = search_create(user=owner, team=team_a, name="e2e review source", space="nasnet", strategy="random",
                           dataset="digits", budget=1, parallelism=1, seed=0,
                           proxy={"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128})

    pages: list = [page]
    with contextlib.ExitStack() as stack:
        member1 = page
        member2 = _new_page(chromium_browser, pages)
        boss = _new_page(chromium_browser, pages)
        other = _new_page(chromium_browser, pages)
        for extra in (member2, boss, other):
            stack.callback(extra.context.close)
        # everyone logs in through the form while the worker trains
        for who, name in ((member1, "nina"), (member2, "omar"), (boss, "olga"), (other, "bea")):
            _log_in(who, base, name)

        assert wait_ended(Search, search.pk, SEARCH_TIMEOUT_S) == Search.Status.FINISHED
        trial = Trial.objects.get(search=search)
        assert trial.status == Trial.Status.FINISHED and trial.reward is not None
        cell_hash, cell_id = trial.cell_hash, trial.cell_id
        review_path = f"/cells/{cell_hash}/review/"

        # -- member 1: Best cells → Review; a Markdown comment, 4 stars --------------------------
        member1.click("nav >> text=Best cells")
        member1.wait_for_url(f"{base}/cells/")
        row = member1.locator("#cells-table tbody tr").filter(has_text=cell_hash[:12])
        assert row.count() == 1
        row.get_by_role("link", name="Review", exact=True).click()
        member1.wait_for_url(f"{base}{review_path}?team={team_a.pk}")
        assert cell_hash[:12] in member1.locator("h1").inner_text()
        assert "Candidate" in member1.locator("#review-status h2").inner_text()
        assert "Not rated yet" in member1.locator("#review-rating").inner_text()
        assert member1.locator("#review-status button[value=approved]").count() == 0  # candidate: shortlist first

        member1.fill("#review-comments textarea[name=body]", f"Looks **promising**, and {SCRIPT} stays text.")
        _post_and_reload(member1, "#review-comments button[type=submit]")
        comment = member1.locator("#review-comments article.comment")
        assert comment.count() == 1
        assert comment.locator("strong").inner_text() == "promising"
        assert SCRIPT in comment.inner_text()  # shown as what was written
        assert comment.locator("script").count() == 0
        assert member1.evaluate("window.__pwned") is None
        assert "nina" in comment.inner_text()

        _post_and_reload(member1, "#review-rating button[name=stars][value='4']")
        rating = member1.locator("#review-rating").inner_text()
        assert "4.0 / 5 from 1 rating" in rating and "yours: 4" in rating, rating
        assert member1.get_attribute("#review-rating button[value='4']", "aria-pressed") == "true"
        member1.screenshot(path=str(SCREENSHOTS / "e2e-review-member1.png"), full_page=True)

        # -- member 2: the review queue shows it as a candidate with one rating and one comment ----
        member2.click("nav >> text=Review")
        member2.wait_for_url(f"{base}/reviews/")
        queued = _queue_row(member2, cell_hash)
        assert queued.count() == 1
        assert queued.locator(".status").inner_text() == "candidate"
        assert "4.00" in queued.inner_text() and "(1)" in queued.inner_text()
        assert queued.locator("td.num").last.inner_text() == "1"  # comments
        member2.screenshot(path=str(SCREENSHOTS / "e2e-review-queue.png"), full_page=True)
        queued.locator(f"a[href^='{review_path}']").click()
        member2.wait_for_url(re.compile(re.escape(review_path)))

        # a comment, 2 stars, a tag, then shortlisted
        member2.fill("#review-comments textarea[name=body]", "Fewer params than the rest: *worth a full run*.")
        _post_and_reload(member2, "#review-comments button[type=submit]")
        _post_and_reload(member2, "#review-rating button[name=stars][value='2']")
        member2.fill("#review-tags input[name=name]", "compact")
        _post_and_reload(member2, "#review-tags button:has-text('Add tag')")
        assert "compact" in member2.locator("#review-tags ul.tags").inner_text()
        _post_and_reload(member2, "#review-status button[value=shortlisted]")
        assert "Shortlisted" in member2.locator("#review-status h2").inner_text()

        rating = member2.locator("#review-rating").inner_text()
        assert "3.0 / 5 from 2 ratings" in rating and "yours: 2" in rating, rating
        comments = member2.locator("#review-comments article.comment")
        assert comments.count() == 2
        assert comments.nth(0).locator("strong").inner_text() == "promising"
        assert comments.nth(1).locator("em").inner_text() == "worth a full run"
        feed = member2.locator("#review-activity li").all_inner_texts()
        for line in ("nina commented", "nina rated 4/5", "omar commented", "omar rated 2/5", "omar tagged compact",
                     "omar changed the status: candidate → shortlisted"):
            assert any(line in text for text in feed), (line, feed)
        assert member2.locator("#review-status a", has_text="Train at full size").count() == 0  # not approved yet
        member2.screenshot(path=str(SCREENSHOTS / "e2e-review-member2.png"), full_page=True)

        # member 1's page, reloaded, sees the same
        member1.reload()
        assert "3.0 / 5 from 2 ratings" in member1.locator("#review-rating").inner_text()
        assert member1.locator("#review-comments article.comment").count() == 2

        # -- the owner: the queue says shortlisted; approve; follow the offer to the transfer form -
        boss.click("nav >> text=Review")
        boss.wait_for_url(f"{base}/reviews/")
        queued = _queue_row(boss, cell_hash)
        assert queued.locator(".status").inner_text() == "shortlisted"
        assert "3.00" in queued.inner_text() and "(2)" in queued.inner_text() and "compact" in queued.inner_text()
        queued.locator(f"a[href^='{review_path}']").click()
        boss.wait_for_url(re.compile(re.escape(review_path)))
        boss.fill("#review-status input[name=note]", "best of the batch")
        _post_and_reload(boss, "#review-status button[value=approved]")
        assert "Approved" in boss.locator("#review-status h2").inner_text()
        assert "by olga" in boss.locator("#review-status").inner_text()
        assert any("olga changed the status: shortlisted → approved (best of the batch)" in text
                   for text in boss.locator("#review-activity li").all_inner_texts())
        assert ReviewStatus.objects.get(team=team_a, cell_id=cell_id).status == ReviewStatus.Status.APPROVED
        decision = Activity.objects.get(team=team_a, cell_id=cell_id, verb=Activity.Verb.STATUS,
                                        detail__to=ReviewStatus.Status.APPROVED)
        boss.screenshot(path=str(SCREENSHOTS / "e2e-review-approved.png"), full_page=True)

        # the queue no longer lists it: approved is decided
        boss.click("nav >> text=Review")
        boss.wait_for_url(f"{base}/reviews/")
        assert _queue_row(boss, cell_hash).count() == 0
        boss.go_back()
        boss.wait_for_url(re.compile(re.escape(review_path)))

        boss.click("#review-status a:has-text('Train at full size')")
        boss.wait_for_url(re.compile(r"/transfers/new/\?cell=.*&decision=\d+"))
        assert f"decision={decision.pk}" in boss.url
        assert boss.input_value("input[type=hidden][name=decision]") == str(decision.pk)
        assert "approval" in boss.locator("#transfer-decision").inner_text()
        boss.fill("#id_name", "e2e reviewed transfer")
        boss.fill("#id_cells", "1")
        boss.fill("#id_base_filters", "4")
        boss.fill("#id_epochs", "1")
        boss.fill("#id_batch_size", "128")
        boss.screenshot(path=str(SCREENSHOTS / "e2e-review-transfer-form.png"), full_page=True)
        boss.click("text=Start training")
        boss.wait_for_url(re.compile(r"/transfers/\d+/$"))
        transfer = Transfer.objects.get()
        assert boss.url == f"{base}/transfers/{transfer.pk}/"
        assert transfer.decision_id == decision.pk and transfer.source_trial_id == trial.pk
        assert (transfer.config["cells"], transfer.config["base_filters"], transfer.config["epochs"],
                transfer.config["batch_size"]) == (1, 4, 1, 128)
        launched = boss.locator("#transfer-decision").inner_text()
        assert "Launched from the decision of olga" in launched, launched
        assert boss.get_attribute("#transfer-decision a", "href") == f"{review_path}?team={team_a.pk}"
        boss.screenshot(path=str(SCREENSHOTS / "e2e-review-transfer.png"), full_page=True)

        # -- team B's user: 404 for the review page, the transfer page and the review API ----------
        for path in (review_path, f"{review_path}?team={team_a.pk}", f"/transfers/{transfer.pk}/",
                     f"/transfers/new/?cell={cell_hash}&decision={decision.pk}",
                     f"/api/cells/{cell_id}/review/", f"/api/cells/{cell_id}/review/?team={team_a.pk}",
                     f"/api/cells/{cell_id}/review/activity/"):
            response = other.request.get(f"{base}{path}")
            assert response.status == 404, (path, response.status)
        response = other.goto(f"{base}{review_path}?team={team_a.pk}")  # in the browser too
        assert response.status == 404
        assert "promising" not in other.content()
        other.js_errors = [e for e in other.js_errors if "404" not in e]  # the browser logs the 404 itself

        other.goto(f"{base}/cells/")
        assert cell_hash[:12] not in other.content()
        other.goto(f"{base}/reviews/")
        assert cell_hash[:10] not in other.content()
        assert other.locator("#queue-table").count() == 0
        other.goto(f"{base}/transfers/")
        assert "e2e reviewed transfer" not in other.content()
        other.screenshot(path=str(SCREENSHOTS / "e2e-review-other-team.png"), full_page=True)

        # -- the tiny transfer ends (so the worker is idle before the database is flushed) ---------
        status = wait_ended(Transfer, transfer.pk, TRANSFER_TIMEOUT_S)
        transfer.refresh_from_db()
        assert status == Transfer.Status.FINISHED, transfer.error

        for who in pages:
            assert who.js_errors == [], who.js_errors
    print(f"review journey: {time.monotonic() - started:.1f} s")
