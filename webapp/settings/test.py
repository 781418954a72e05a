"""Tests: fast hashing, and a SQLite file (not memory) so a real Celery worker can share it.

The test database file is unique per test run (two runs at once must not share it); a worker
started by the tests reaches it through DATABASE_URL. Messages go to an in-memory broker
unless CELLSEARCH_TEST_BROKER_URL names one (the integration tests' own Redis).
"""

import os

from webapp.env import env_int
from webapp.settings.base import *  # noqa: F401,F403
from webapp.settings.base import DATABASES, REST_FRAMEWORK

SECRET_KEY = "tests-only-not-a-secret"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("CELLSEARCH_TEST_DB", f"/tmp/cellsearch-test-{os.getpid()}.sqlite3")  # noqa: S108
    }
CELERY_BROKER_URL = os.environ.get("CELLSEARCH_TEST_BROKER_URL", "memory://")
# Short clocks, so the fault drills (tests/faults) see a dead worker or a lost message within
# seconds; a drill may shorten them further through the environment of the processes it starts.
CELLSEARCH_HEARTBEAT_SECONDS = 1
# One thread per training: the suite runs two pytest processes, each with its workers' trainings,
# on a machine's cores (a worker alone would give each training all the cores it shares).
CELLSEARCH_THREADS_PER_CHILD = env_int("CELLSEARCH_THREADS_PER_CHILD", 1)
CELLSEARCH_HEARTBEAT_TIMEOUT = env_int("CELLSEARCH_HEARTBEAT_TIMEOUT", 5)
CELLSEARCH_MIN_STALL_SECONDS = 2
CELLSEARCH_PENDING_TIMEOUT = env_int("CELLSEARCH_PENDING_TIMEOUT", 60)
# Trials asked on need only, so a test knows which trials a step issues; the tests of asking
# ahead (tests/webapp/test_trials_ahead.py) set it, on their workers too.
CELLSEARCH_TRIALS_AHEAD = env_int("CELLSEARCH_TRIALS_AHEAD", 0)
# Serve static files straight from the app folders: tests run no collectstatic.
WHITENOISE_USE_FINDERS = True
# The suite makes thousands of API requests in a minute from one user and one IP (the
# permission matrix): throttling is tested with its own low rate (tests/webapp/test_abuse.py).
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"user": "1000000/min", "anon": "1000000/min"}
