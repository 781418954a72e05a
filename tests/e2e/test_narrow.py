"""Every main page at a phone's width (390 px) and a laptop's (1280 px): nothing is wider than the
screen (tables and diagrams scroll in their own box), the navigation folds into a menu on the
phone, and plotly's toolbar stays out of the plot. The rows are made directly: no worker.

Screenshots go to $CELLSEARCH_E2E_SCREENSHOTS (default /tmp): e2e-narrow-<width>-<page>.png for
each page and width (a transfer's page too: its chart has a title; a one-shot search's supernet
training, its chart and best cells), e2e-narrow-390-menu.png (the menu open) and
e2e-narrow-1280-cells-preview.png (a thumbnail's preview).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(os.environ.get("CELLSEARCH_E2E_SCREENSHOTS", "/tmp"))
PASSWORD = "e2e-password-123"
PROXY = {"epochs": 2, "cells": 1, "filters": 48, "batch_size": 128}
WIDTHS = (390, 1280)
#: static/css/cellsearch.css folds the navigation into a menu below this width.
NAV_FOLDS_BELOW = 1200

#: The visible elements whose box sticks out of the viewport sideways, outside any box that
#: scrolls or clips them (a table in its card, a diagram) — what makes a phone scroll the page.
#: Boxes wholly left of the page are hidden on purpose (plotly measures text there) and never scroll.
OVERFLOWING = """
() => {
  const width = window.innerWidth, found = [];
  const clipped = el => {
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      if (getComputedStyle(box).overflowX !== "visible") { return true; }
    }
    return false;
  };
  for (const el of document.body.querySelectorAll("*")) {
    const rect = el.getBoundingClientRect();
    if (!rect.width || !rect.height || rect.right <= 0 || getComputedStyle(el).visibility === "hidden") { continue; }
    if ((rect.left < -1 || rect.right > width + 1) && !clipped(el)) {
      const name = `${el.tagName.toLowerCase()}#${el.id}.${el.getAttribute("class")}`;
      found.push(`${name} ${Math.round(rect.left)}..${Math.round(rect.right)}`);
    }
  }
  return found;
}
"""


def _rows():
    """A finished search with three trials (their cells among the best cells), a second one to
    compare it with, a transfer and a worker: every main page has something to show."""
    from searchcore.spaces import parse_genotype
    from webapp.cells.models import Cell, CellResult
    from webapp.searches.models import Search
    from webapp.teams.services import team_default_for_user, user_create
    from webapp.transfers.models import Transfer
    from webapp.trials.models import Trial
    from webapp.workers.models import Worker

    user = user_create(username="nora", password=PASSWORD, team_name="narrow")
    team = team_default_for_user(user=user)
    ops = ("sep_conv_3x3", "identity", "avg_pool_3x3", "max_pool_3x3", "sep_conv_5x5")
    searches, trials = [], []
    for s in range(2):
        search = Search.objects.create(team=team, owner=user, name=f"narrow search {s} with a long descriptive name",
                                       strategy="random", dataset="digits", proxy=PROXY, proxy_key="p" * 64,
                                       budget=3, seed=s, status=Search.Status.FINISHED, trials_issued=3)
        searches.append(search)
        for i in range(3):
            blocks = [{"inputs": [0, 1], "ops": [ops[i], ops[s + 1]], "combine": "add"},
                      {"inputs": [1, 2], "ops": [ops[(i + 2) % 5], "sep_conv_3x3"], "combine": "add"}]
            genotype = {"format": "cellsearch.nasnet/1", "normal": blocks, "reduction": blocks}
            cell_hash = parse_genotype(genotype).canonical_hash()
            cell = Cell.objects.get_or_create(cell_hash=cell_hash, defaults={"space": "nasnet", "genotype": genotype})[0]
            reward = 0.5 + 0.1 * i + 0.01 * s
            epochs = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.3 * e, "val_loss": 1.9 / e,
                       "val_acc": reward - 0.1 * (2 - e), "lr": 0.05 / e, "seconds": 1.5} for e in (1, 2)]
            trial = Trial.objects.create(search=search, index=i, cell=cell, genotype=genotype, cell_hash=cell_hash,
                                         status=Trial.Status.FINISHED, reward=reward, val_acc=reward, params=123456,
                                         mult_adds=7654321, epochs=epochs, gpu_seconds=30)
            trials.append(trial)
            CellResult.objects.update_or_create(cell=cell, team=team, proxy_key=search.proxy_key, defaults={
                "dataset": "digits", "best_trial": trial, "best_reward": reward, "params": 123456,
                "mult_adds": 7654321})
    best = trials[2]
    transfer_epochs = [{**epoch, "images_per_second": 900.0 + 50 * epoch["epoch"]} for epoch in best.epochs]
    transfer = Transfer.objects.create(team=team, owner=user, name="narrow transfer", cell=best.cell, genotype=best.genotype,
                            cell_hash=best.cell_hash, source_trial=best, source_search=best.search,
                            preset="nasnet-cifar", config={"cells": 2, "filters": 96, "epochs": 2},
                            status=Transfer.Status.FINISHED, test_acc=0.9, epochs=transfer_epochs)
    Worker.objects.create(name="gpu0@a-rather-long-host-name.cluster.example.org", host="a-rather-long-host-name",
                          queues="gpu", gpu_name="NVIDIA H100 80GB HBM3", gpu_memory_mb=81559, current_trial=best)
    return searches, best, transfer


def _oneshot_search(searches, trials):
    """A one-shot search whose supernet trains its second of three epochs, its leaders drawn:
    the Supernet card, its chart and its cells (and a trial marked one-shot)."""
    from webapp.searches.models import OneShotRun, Search
    from webapp.trials.models import Trial

    search = Search.objects.create(team=searches[0].team, owner=searches[0].owner, name="narrow one-shot search",
                                   strategy="enas", dataset="digits", proxy=PROXY, proxy_key="o" * 64, budget=2,
                                   status=Search.Status.RUNNING)
    leaders = [{"cell_hash": t.cell_hash, "genotype": t.genotype, "val_acc": t.reward - 0.2} for t in trials[2::-1]]
    epochs = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.3 * e, "sampled_val_acc": 0.2 * e,
               "best_val_acc": 0.25 * e, "lr": 0.05, "seconds": 3.0, "leaders": leaders} for e in (1, 2)]
    OneShotRun.objects.create(search=search, config={"proxy": {**PROXY, "epochs": 3}}, status=OneShotRun.Status.RUNNING,
                              epochs=epochs, checkpoint_epoch=2, attempts=1, gpu_seconds=600,
                              worker="gpu0@a-rather-long-host-name.cluster.example.org", device="NVIDIA H100 80GB HBM3")
    Trial.objects.create(search=search, index=0, cell=trials[2].cell, genotype=trials[2].genotype,
                         cell_hash=trials[2].cell_hash, status=Trial.Status.PENDING, shared_weight_acc=leaders[0]["val_acc"])
    return search


def test_every_main_page_fits_a_phone_and_a_laptop(chromium_browser, live_server):
    searches, best, transfer = _rows()
    oneshot = _oneshot_search(searches, list(best.search.trials.order_by("index")))
    pages = {
        "searches": "/", "new-search": "/searches/new/", "search": f"/searches/{searches[0].pk}/",
        "oneshot-search": f"/searches/{oneshot.pk}/",
        "trial": f"/trials/{best.pk}/", "compare": f"/searches/compare/?searches={searches[0].pk},{searches[1].pk}",
        "cells": "/cells/", "review": f"/cells/{best.cell_hash}/review/", "workers": "/workers/",
        "transfers": "/transfers/", "transfer": f"/transfers/{transfer.pk}/", "teams": "/teams/",
    }
    too_wide: list[str] = []
    js_errors: list[str] = []
    for width in WIDTHS:
        context = chromium_browser.new_context(viewport={"width": width, "height": 844})
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.on("pageerror", lambda error: js_errors.append(str(error)))
        try:
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill("#id_username", "nora")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/")
            for name, path in pages.items():
                page.goto(f"{live_server.url}{path}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(SCREENSHOTS / f"e2e-narrow-{width}-{name}.png"), full_page=True)
                if not page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"):
                    too_wide.append(f"{name} at {width} px: scrolls sideways ({page.evaluate(OVERFLOWING)})")
                elif overflowing := page.evaluate(OVERFLOWING):
                    too_wide.append(f"{name} at {width} px: {overflowing}")
            _check_menu(page, folded=width < NAV_FOLDS_BELOW)
            _check_toolbar_clear(page, f"{live_server.url}/trials/{best.pk}/", "acc-chart")
            _check_toolbar_clear(page, f"{live_server.url}/transfers/{transfer.pk}/", "speed-chart")  # has a title
            _check_toolbar_clear(page, f"{live_server.url}/searches/{oneshot.pk}/", "supernet-acc-chart")
            if width > 800:
                _check_thumbnail_preview(page, f"{live_server.url}/cells/")
        finally:
            context.close()
    assert too_wide == []
    assert js_errors == []


def _check_menu(page, *, folded: bool) -> None:
    """On a phone the links hide behind the Menu button, which opens and closes them."""
    link, toggle = page.locator("nav >> text=Best cells"), page.locator("[data-nav-toggle]")
    if not folded:
        assert link.is_visible() and not toggle.is_visible()
        return
    assert toggle.is_visible() and not link.is_visible()
    toggle.click()
    assert link.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    page.screenshot(path=str(SCREENSHOTS / f"e2e-narrow-{page.viewport_size['width']}-menu.png"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    toggle.click()
    assert not link.is_visible() and toggle.get_attribute("aria-expanded") == "false"


def _check_toolbar_clear(page, url: str, chart_id: str) -> None:
    """Plotly's toolbar, shown on hover, sits above the plot area and the chart's title, not over them."""
    page.goto(url)
    chart = page.locator(f"#{chart_id}.js-plotly-plot")
    chart.wait_for()
    chart.scroll_into_view_if_needed()
    chart.hover()
    toolbar = page.locator(f"#{chart_id} .modebar")
    toolbar.wait_for(state="visible")
    bottom = toolbar.bounding_box()["y"] + toolbar.bounding_box()["height"]
    assert bottom <= page.locator(f"#{chart_id} .draglayer .nsewdrag").bounding_box()["y"] + 1
    for title in page.locator(f"#{chart_id} .gtitle").all():
        assert bottom <= title.bounding_box()["y"] + 1


def _check_thumbnail_preview(page, url: str) -> None:
    """With a pointer, a best cell's thumbnail shows its diagram large, inside the window."""
    page.goto(url)
    thumb, preview = page.locator("#cells-table .thumb").first, page.locator("#cells-table .thumb-preview").first
    assert not preview.is_visible()
    thumb.hover()
    preview.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#cells-table .thumb-preview').naturalWidth > 0")
    box, small = preview.bounding_box(), thumb.bounding_box()
    assert box["width"] > 2.5 * small["width"] and 0 <= box["x"] and box["x"] + box["width"] <= page.viewport_size["width"]
    page.screenshot(path=str(SCREENSHOTS / "e2e-narrow-1280-cells-preview.png"))
