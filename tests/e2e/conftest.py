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
        new_context = browser.new_context

        def new_watched_context(*args, **kwargs):
            context = new_context(*args, **kwargs)
            _watch_csp(context)
            return context

        browser.new_context = new_watched_context  # every context a test opens reports CSP violations
        try:
            yield browser
        finally:
            browser.close()


#: Runs in every document before its own scripts: reports each Content-Security-Policy
#: violation (a blocked inline script, handler, eval, style or resource) to the test.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cellsearchCspViolation([event.effectiveDirective, event.blockedURI || "inline",
                                   event.sourceFile + ":" + event.lineNumber, event.sample].join(" "));
});
"""
#: What Chromium and the libraries log when the policy blocks something.
CSP_CONSOLE = ("Content Security Policy", "Content-Security-Policy", "strict CSP")
#: The browser contexts the current test opened, each with its `csp_violations`.
_CONTEXTS: list = []


def _watch_csp(context) -> None:
    """Collect the context's Content-Security-Policy violations, on every page it opens, in
    `context.csp_violations`: the violation events and what the console reports."""
    violations: list[str] = []
    context.csp_violations = violations
    context.expose_function("__cellsearchCspViolation", lambda violation: violations.append(violation))
    context.add_init_script(CSP_LISTENER)
    context.on("console", lambda msg: violations.append(f"{msg.page.url if msg.page else '?'}: console: {msg.text}")
               if any(words in msg.text for words in CSP_CONSOLE) else None)
    _CONTEXTS.append(context)


@pytest.fixture(autouse=True)
def _no_csp_violations():
    """Every browser test fails on a Content-Security-Policy violation in any of its contexts
    (the `page` fixture's, and those a test opens itself from `chromium_browser`)."""
    _CONTEXTS.clear()
    yield
    found = [v for context in _CONTEXTS for v in context.csp_violations]
    _CONTEXTS.clear()
    assert not found, f"Content-Security-Policy violations: {found}"


@pytest.fixture
def page(chromium_browser):
    """A fresh browser context and page (its own cookies) with the JavaScript errors it meets
    collected in `page.js_errors` (and, as in every context of `chromium_browser`, any
    Content-Security-Policy violation failing the test)."""
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
