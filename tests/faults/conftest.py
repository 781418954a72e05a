"""Fault drills reuse the web app's user and search fixtures."""

from tests.webapp.conftest import make_search, user  # noqa: F401
