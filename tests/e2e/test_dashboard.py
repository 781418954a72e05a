"""A real browser against a real server, Redis and Celery worker: log in, launch a tiny search
through the form, watch its trials arrive live, open a trial's cell diagram, compare two
searches on the Figure 6 chart.

Screenshots go to $CELLSEARCH_E2E_SCREENSHOTS (default /tmp): e2e-login.png, e2e-form.png, e2e-live.png,
e2e-detail.png, e2e-trial.png, e2e-compare.png, e2e-cells.png,
e2e-list.png.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_ended

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(os.environ.get("CELLSEARCH_E2E_SCREENSHOTS", "/tmp"))
#: How long the worker may take to train the tiny search's trials on one CPU thread.
TRAINING_TIMEOUT_MS = 180_000
PASSWORD = "e2e-password-123"


def _wait_for_status(page, status: str, timeout_ms: int) -> None:
    page.wait_for_function(
        "s => { const b = document.querySelector('#search-status-badge');"
        " return b && b.textContent.trim().toLowerCase() === s; }",
        arg=status, timeout=timeout_ms)


def test_launch_watch_inspect_and_compare(page, live_server, celery_worker_process):
    from webapp.searches.models import Search
    from webapp.searches.services import search_create
    from webapp.teams.services import user_create
    from webapp.trials.models import Trial

    user = user_create(username="erin", password=PASSWORD, team_name="e2e")
    base = live_server.url

    # -- log in through the form: the login page is where an anonymous visit lands -------------
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url
    page.screenshot(path=str(SCREENSHOTS / "e2e-login.png"))
    page.fill("#id_username", "erin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert page.locator("h1").inner_text() == "Searches"

    # -- launch a tiny search through the new-search form -----------------------------------------
    page.click("nav >> text=New search")
    page.wait_for_url(f"{base}/searches/new/")
    page.fill("#id_name", "e2e random")
    page.select_option("#id_strategy", "random")
    page.select_option("#id_dataset", "digits")
    page.fill("#id_budget", "3")
    page.fill("#id_parallelism", "1")
    page.fill("#id_epochs", "1")
    page.fill("#id_cells", "1")
    page.fill("#id_filters", "48")
    page.fill("#id_batch_size", "128")
    page.fill("#id_epochs", "0")  # first two mistakes: one submit shows both, by their fields and at the top
    page.fill("#id_filters", "50")
    page.click("text=Launch search")
    assert "from 1 to 10,000, got 0" in page.locator("#errors-epochs").inner_text()
    assert "a multiple of 24, got 50" in page.locator("#errors-filters").inner_text()
    assert page.locator("#error-summary li a").count() == 2
    page.screenshot(path=str(SCREENSHOTS / "e2e-form.png"), full_page=True)
    assert not Search.objects.exists()
    page.fill("#id_epochs", "1")
    page.fill("#id_filters", "48")
    page.click("text=Launch search")
    page.wait_for_url(re.compile(r"/searches/\d+/$"))
    search = Search.objects.get(name="e2e random")
    assert page.url == f"{base}/searches/{search.pk}/"
    assert "launched" in page.locator(".messages").inner_text()

    # -- the page updates itself: trials arrive in the table, the chart draws, polling stops -------
    page.wait_for_selector("#trials-table .trial-row .badge-finished", timeout=TRAINING_TIMEOUT_MS)
    page.screenshot(path=str(SCREENSHOTS / "e2e-live.png"), full_page=True)  # most likely still running
    _wait_for_status(page, "finished", TRAINING_TIMEOUT_MS)
    page.wait_for_function("() => document.querySelectorAll('#trials-table .trial-row .badge-finished').length === 3")
    assert page.locator("#progress-text").inner_text() == "3 / 3"
    assert page.locator("#best-reward").inner_text().endswith("%")
    assert page.get_attribute("#search-poller", "hx-get") is None  # ended: no more polling
    page.wait_for_function("() => document.querySelectorAll('#reward-chart .scatterlayer .point').length >= 3")
    assert page.locator("#reward-chart.js-plotly-plot").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "e2e-detail.png"), full_page=True)

    # -- sorting the table by reward is a link that keeps working after the live updates ----------
    page.click("#trials-table th >> text=Reward")
    page.wait_for_url(re.compile(r"sort=-reward"))
    shown = [float(t.rstrip("%")) for t in page.locator("#trials-table tbody td.num.strong").all_inner_texts()]
    assert shown == sorted(shown, reverse=True)

    # -- a trial's page: its cell drawn by Graphviz, its epoch curves ----------------------------
    best = Trial.objects.filter(search=search).order_by("-reward").first()
    page.click(f"#trials-table a[href='/trials/{best.pk}/']")
    page.wait_for_url(f"{base}/trials/{best.pk}/")
    diagram = page.locator("#cell-diagram svg")
    diagram.wait_for(state="visible")
    assert diagram.bounding_box()["width"] > 200
    assert page.locator("#cell-diagram svg text", has_text="Normal Cell").count() == 1
    assert page.locator("#cell-diagram svg text", has_text="Reduction Cell").count() == 1
    page.wait_for_selector("#loss-chart.js-plotly-plot")
    page.wait_for_selector("#acc-chart.js-plotly-plot")
    if page.locator("#darts").count():  # cells that only add have a DARTS form too
        assert page.locator("#darts").inner_text().startswith("Genotype(")
    genotype_link = page.locator(f"a[href='/api/cells/{best.cell_id}/genotype.json']").first
    with page.expect_download() as download:
        genotype_link.click()
    assert download.value.suggested_filename.endswith(".json")
    page.screenshot(path=str(SCREENSHOTS / "e2e-trial.png"), full_page=True)

    # -- fork the search from this trial: the fork's one trial is the cell, its result copied -----
    page.click("#fork-trial")
    page.wait_for_url(re.compile(rf"/searches/{search.pk}/fork/\?trials={best.index}$"))
    assert page.input_value("#id_trials") == str(best.index)
    page.fill("#id_budget", "1")
    page.click("#fork-form button[type=submit]")
    fork = Search.objects.get(forked_from=search)
    page.wait_for_url(f"{base}/searches/{fork.pk}/")
    assert "Forked from e2e random at trial" in page.locator("#search-lineage").inner_text()
    assert wait_ended(Search, fork.pk, TRAINING_TIMEOUT_MS / 1000) == Search.Status.FINISHED
    copied = fork.trials.get()
    assert copied.cell_hash == best.cell_hash and copied.reused_from_id is not None and copied.reward == best.reward

    # -- a second search (another seed, through the services), then the comparison --------------
    second = search_create(user=user, name="e2e random seed 1", space="nasnet", strategy="random",
                           dataset="digits", budget=2, parallelism=1, seed=1,
                           proxy={"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128})
    # the searches list, left open, shows it finish without a reload
    page.click("nav >> text=Searches")
    page.wait_for_url(f"{base}/")
    page.locator("#searches-table").wait_for()
    page.wait_for_function("() => document.querySelectorAll('#searches-table .badge-finished').length === 3",
                           timeout=TRAINING_TIMEOUT_MS)
    assert wait_ended(Search, second.pk, TRAINING_TIMEOUT_MS / 1000) == Search.Status.FINISHED

    page.click("nav >> text=Compare")
    page.wait_for_url(f"{base}/searches/compare/")
    page.check(f"#pick-{search.pk}")
    page.check(f"#pick-{second.pk}")
    page.fill("#id_top", "1,2,25")
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#compare-chart.js-plotly-plot")
    assert page.locator("#compare-errors").count() == 0
    legend = page.locator("#compare-chart .legendtext").all_text_contents()
    assert any("random · top 1 (mean of 2, 95% interval)" in text for text in legend), legend
    assert any(re.fullmatch(r"random · top 25: needs 25 unique models, has at most [1-3]", t) for t in legend), legend
    page.screenshot(path=str(SCREENSHOTS / "e2e-compare.png"), full_page=True)

    # -- the best cells page lists them, with their diagrams from the API -------------------------
    page.click("nav >> text=Best cells")
    page.wait_for_selector("#cells-table img.thumb")
    page.wait_for_function("() => [...document.querySelectorAll('#cells-table img.thumb')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    assert page.locator("#cells-table tbody tr").count() >= 2
    page.screenshot(path=str(SCREENSHOTS / "e2e-cells.png"), full_page=True)

    page.click("nav >> text=Searches")
    page.wait_for_url(f"{base}/")
    assert page.locator("#searches-table tbody tr").count() == 3
    assert page.locator("#searches-table .badge-finished").count() == 3
    # the queue's health strip shows the test's worker, idle, and the list no longer polls: all ended
    page.wait_for_selector("#queue-health")
    assert page.locator("#workers-idle strong").inner_text() == "1"
    assert page.locator("#search-list[hx-get]").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "e2e-list.png"), full_page=True)

    # -- the first search's analysis page draws its figures (issue 19) ---------------------------
    page.goto(f"{base}/searches/{search.pk}/")
    page.click("#search-analysis")
    page.wait_for_url(f"{base}/searches/{search.pk}/analysis/")
    page.wait_for_function("() => [...document.querySelectorAll('[data-analysis-figure]')]"
                           ".every(chart => chart.dataset.drawn === 'true')")
    for figure in ("curves", "cost", "ops"):
        chart = page.locator(f"#analysis-{figure}")
        assert page.locator(f"#analysis-{figure}.js-plotly-plot").count() == 1, chart.inner_text()
    assert "no controller" in page.locator("#analysis-controller").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "e2e-analysis.png"), full_page=True)

    assert page.js_errors == [], page.js_errors
