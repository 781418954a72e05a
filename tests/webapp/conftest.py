"""Fixtures for the web app's tests: users in separate teams, and small searches.

The Redis and Celery worker fixtures (`redis_server`, `celery_broker`,
`celery_worker_process`) live in tests/conftest.py, shared with the end-to-end tests.
"""

import pytest

#: A proxy that trains a child on digits in a couple of seconds on one CPU thread.
TINY_PROXY = {"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128}


@pytest.fixture
def user(db):
    from webapp.teams.services import user_create

    return user_create(username="alice", password="alice-password-1", team_name="team-a")


@pytest.fixture
def other_user(db):
    from webapp.teams.services import user_create

    return user_create(username="bob", password="bob-password-1", team_name="team-b")


@pytest.fixture
def tiny_proxy():
    return dict(TINY_PROXY)


@pytest.fixture
def make_search(user):
    """`make_search(**overrides)`: a random-strategy nasnet search on digits with a tiny proxy."""
    from webapp.searches.services import search_create

    def make(**overrides):
        options = {"user": user, "space": "nasnet", "strategy": "random", "dataset": "digits", "budget": 4,
                   "parallelism": 2, "seed": 0, "proxy": dict(TINY_PROXY), **overrides}
        return search_create(**options)

    return make
