"""Issue 15's journey in a real browser against a real server, Redis and Celery worker: log in,
find a cell (a one-trial search the worker really trains), open Best cells, "Train at full
size…", pick the `quick` preset, make a mistake and see it next to its field, launch a tiny
transfer, watch its page update itself to the end (epochs, the loss and accuracy charts, the
status, polling stops), see its cell drawn, and download what it made: the best checkpoint
(loaded by torch and by `searchcore.load_model`), the genotype JSON, the model card, the ONNX
and TorchScript exports.

Screenshots go to $CELLSEARCH_E2E_SCREENSHOTS (default /tmp): e2e-transfer-cells.png,
e2e-transfer-form.png, e2e-transfer-form-error.png, e2e-transfer-live.png, e2e-transfer-done.png.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_ended

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(os.environ.get("CELLSEARCH_E2E_SCREENSHOTS", "/tmp"))
#: How long the worker may take for the one-trial search, and for the tiny transfer (training
#: takes seconds on one CPU thread; the ONNX and TorchScript exports and their checks ~15 s more).
SEARCH_TIMEOUT_S = 120
TRANSFER_TIMEOUT_MS = 150_000
PASSWORD = "e2e-password-123"


def _badge(page) -> str:
    return page.locator("#transfer-status-badge").inner_text().strip().lower()


def _download(page, selector: str, folder: Path) -> Path:
    """Click a download link and keep the file it gives under `folder`, by its suggested name."""
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    assert download.failure() is None, download.failure()
    path = folder / download.suggested_filename
    download.save_as(str(path))
    return path


def test_train_a_found_cell_at_full_size_watch_it_and_download_it(page, live_server, celery_worker_process,
                                                                  tmp_path):
    import torch

    import searchcore
    from webapp.searches.models import Search
    from webapp.searches.services import search_create
    from webapp.teams.services import user_create
    from webapp.transfers.models import Transfer
    from webapp.trials.models import Trial

    user = user_create(username="tess", password=PASSWORD, team_name="e2e")
    base = live_server.url

    # -- a found cell: a one-trial search that the worker really trains (a few seconds) ----------
    search = search_create(user=user, name="e2e source", space="nasnet", strategy="random", dataset="digits",
                           budget=1, parallelism=1, seed=0,
                           proxy={"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128})

    # -- log in through the form, meanwhile --------------------------------------------------------
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "tess")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    assert wait_ended(Search, search.pk, SEARCH_TIMEOUT_S) == Search.Status.FINISHED
    trial = Trial.objects.get(search=search)
    assert trial.status == Trial.Status.FINISHED and trial.reward is not None

    # -- Best cells lists it; its "Train at full size…" button opens the form ----------------------
    page.click("nav >> text=Best cells")
    page.wait_for_url(f"{base}/cells/")
    row = page.locator("#cells-table tbody tr").filter(has_text=trial.cell_hash[:12])
    assert row.count() == 1
    page.screenshot(path=str(SCREENSHOTS / "e2e-transfer-cells.png"), full_page=True)
    row.locator("text=Train at full size…").click()
    page.wait_for_url(re.compile(r"/transfers/new/\?(trial|cell)="))
    assert trial.cell_hash[:12] in page.locator("h1").inner_text()
    page.locator("#cell-diagram svg").wait_for(state="visible")

    # -- presets fill the fields: another preset first, then `quick` ------------------------------
    assert page.input_value("#id_preset") == "quick"  # the form starts from it
    page.select_option("#id_preset", "nasnet-cifar")
    assert page.input_value("#id_dataset") == "cifar10"
    assert (page.input_value("#id_cells"), page.input_value("#id_filters"), page.input_value("#id_epochs")) \
        == ("6", "768", "600")
    assert page.input_value("#id_base_filters") == ""
    page.select_option("#id_preset", "quick")
    assert page.input_value("#id_dataset") == "digits"
    assert {name: page.input_value(f"#id_{name}") for name in
            ("cells", "base_filters", "filters", "epochs", "batch_size", "lr", "drop_path_keep", "cutout")} == {
        "cells": "2", "base_filters": "8", "filters": "", "epochs": "10", "batch_size": "64", "lr": "0.05",
        "drop_path_keep": "0.8", "cutout": "0"}
    assert page.input_value("#id_nesterov") == "true"  # a boolean the preset leaves at its default
    page.screenshot(path=str(SCREENSHOTS / "e2e-transfer-form.png"), full_page=True)

    # -- a mistake: the error shows next to its field, nothing is queued --------------------------
    page.fill("#id_name", "e2e tiny transfer")
    page.fill("#id_epochs", "0")
    page.click("text=Start training")
    page.wait_for_selector("#errors-epochs")
    assert "in 1..10000" in page.locator("#field-epochs #errors-epochs").inner_text()
    assert page.locator(".errorlist").count() == 1
    assert page.input_value("#id_preset") == "quick" and page.input_value("#id_name") == "e2e tiny transfer"
    page.screenshot(path=str(SCREENSHOTS / "e2e-transfer-form-error.png"), full_page=True)
    assert not Transfer.objects.exists()

    # -- a tiny run, launched ------------------------------------------------------------------------
    page.fill("#id_cells", "1")
    page.fill("#id_base_filters", "4")
    page.fill("#id_epochs", "2")
    page.fill("#id_batch_size", "128")
    page.click("text=Start training")
    page.wait_for_url(re.compile(r"/transfers/\d+/$"))
    transfer = Transfer.objects.get()
    assert page.url == f"{base}/transfers/{transfer.pk}/"
    assert "queued" in page.locator(".messages").inner_text()
    assert transfer.preset == "quick" and transfer.dataset == "digits" and transfer.source_trial_id == trial.pk
    assert (transfer.config["cells"], transfer.config["base_filters"], transfer.config["epochs"],
            transfer.config["batch_size"]) == (1, 4, 2, 128)
    assert transfer.config["filters"] is None
    page.evaluate("window.__samePage = true")  # gone if anything below reloads the page
    assert _badge(page) in ("pending", "running")
    assert page.get_attribute("#transfer-poller", "hx-get") == f"/transfers/{transfer.pk}/live/"
    assert page.locator("#transfer-network").inner_text().startswith("1@")

    # -- the cell diagram ---------------------------------------------------------------------------
    diagram = page.locator("#cell-diagram svg")
    diagram.wait_for(state="visible")
    assert diagram.bounding_box()["width"] > 200
    assert page.locator("#cell-diagram svg text", has_text="Normal Cell").count() == 1
    assert page.locator("#cell-diagram svg text", has_text="Reduction Cell").count() == 1

    # -- the page updates itself: epochs arrive, the charts draw, the status ends, polling stops ---
    page.wait_for_function("() => document.querySelectorAll('#loss-chart .scatterlayer .point').length >= 2",
                           timeout=TRANSFER_TIMEOUT_MS)  # at least one epoch: train and val loss
    assert page.locator("#no-epochs").is_hidden()
    page.screenshot(path=str(SCREENSHOTS / "e2e-transfer-live.png"), full_page=True)
    page.wait_for_function(
        "() => { const b = document.querySelector('#transfer-status-badge');"
        " return b && ['finished', 'failed', 'cancelled'].includes(b.textContent.trim().toLowerCase()); }",
        timeout=TRANSFER_TIMEOUT_MS)
    transfer.refresh_from_db()
    assert _badge(page) == "finished", transfer.error
    assert page.evaluate("window.__samePage === true")
    assert page.get_attribute("#transfer-poller", "hx-get") is None
    assert page.locator("#transfer-status .live-dot").count() == 0
    assert page.locator("#transfer-epochs-done").inner_text() == "2 / 2"
    page.wait_for_function("() => document.querySelectorAll('#loss-chart .scatterlayer .point').length === 4")
    page.wait_for_function("() => document.querySelectorAll('#acc-chart .scatterlayer .point').length === 4")
    assert page.locator("#loss-chart.js-plotly-plot").count() == 1
    assert page.locator("#acc-chart.js-plotly-plot").count() == 1
    assert page.locator("#speed-chart.js-plotly-plot").count() == 1
    assert page.locator("#transfer-best").inner_text() == f"{100 * transfer.best_val_acc:.2f}%"
    assert page.locator("#transfer-test").inner_text() == f"{100 * transfer.test_acc:.2f}%"
    exports = page.locator("#transfer-exports").inner_text()
    assert "onnx: ok" in exports and "torchscript: ok" in exports, exports
    page.screenshot(path=str(SCREENSHOTS / "e2e-transfer-done.png"), full_page=True)

    # -- the downloads --------------------------------------------------------------------------------
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for kind in ("best", "last", "onnx", "torchscript", "genotype", "cardmd", "cardjson"):
        assert page.locator(f"#transfer-downloads a#download-{kind}[download]").count() == 1, kind

    best = _download(page, "#download-best", downloads)
    assert best.name == f"transfer{transfer.pk}-{transfer.cell_hash[:12]}-best.pt"
    checkpoint = torch.load(best, weights_only=True)
    assert checkpoint["format"] == "cellsearch.checkpoint/1" and checkpoint["genotype"] == transfer.genotype
    model = searchcore.load_model(best)
    assert isinstance(model, torch.nn.Module)
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)

    genotype = json.loads(_download(page, "#download-genotype", downloads).read_text())
    assert genotype == transfer.genotype == trial.genotype

    card = _download(page, "#download-cardmd", downloads)
    assert card.suffix == ".md"
    text = card.read_text()
    assert f"`{transfer.cell_hash}`" in text
    assert f"| Test accuracy | {100 * transfer.test_acc:.2f}% |" in text
    assert f"| Best validation accuracy | {100 * transfer.best_val_acc:.2f}% |" in text

    for kind in ("onnx", "torchscript"):  # the export links answer with the files
        response = page.request.get(base + page.get_attribute(f"#download-{kind}", "href"))
        assert response.ok and len(response.body()) > 1000, (kind, response.status)

    # -- the transfers list shows it ----------------------------------------------------------------
    page.goto(f"{base}/transfers/")
    assert page.locator("#transfers-table tbody tr").count() == 1
    assert page.locator("#transfers-table .badge-finished").count() == 1

    assert page.js_errors == [], page.js_errors
