"""End-to-end fixtures: a headless Chromium driven by Playwright against pytest-django's live
server. The Redis and Celery worker fixtures (`redis_server`, `celery_broker`,
`celery_worker_process`) come from tests/conftest.py; the worker shares the live server's
SQLite test database file.

Playwright cannot download browsers here: it drives the system Chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CELLSEARCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium_browser():
    """One headless Chromium for the session. A missing browser fails the test, never skips
    it: bin/test installs Debian's chromium, so its absence is a broken setup to see."""
    from playwright import sync_api

    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium or set CELLSEARCH_CHROMIUM")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls the test makes
    # in between are still plain synchronous calls, so let them through.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium_browser):
    """A fresh browser context and page (its own cookies) with the JavaScript errors it meets
    collected in `page.js_errors`."""
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.on("console", lambda msg: page.js_errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield page
    finally:
        context.close()


def wait_ended(model, pk: int, timeout: float) -> str:
    """Poll the row until its status is one of `model.ENDED` (the worker is another process);
    returns that status."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = model.objects.values_list("status", flat=True).get(pk=pk)
        if status in model.ENDED:
            return status
        time.sleep(0.5)
    raise AssertionError(f"{model.__name__} {pk} did not end within {timeout} s")
