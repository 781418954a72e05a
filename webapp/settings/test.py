"""Tests: fast hashing, and a SQLite file (not memory) so a real Celery worker can share it."""

import os

from webapp.settings.base import *  # noqa: F401,F403
from webapp.settings.base import DATABASES

SECRET_KEY = "tests-only-not-a-secret"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("CELLSEARCH_TEST_DB", "/tmp/cellsearch-test.sqlite3")}
CELLSEARCH_HEARTBEAT_SECONDS = 1
CELLSEARCH_HEARTBEAT_TIMEOUT = 5
