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
def api(user):
    """An API client logged in as `user`."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    return client


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


@pytest.fixture
def queued_steps(monkeypatch):
    """No broker: record the control steps the services would queue."""
    from webapp.celery import app

    calls = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **kw: calls.append(tuple(args)))
    return calls


@pytest.fixture
def sent(monkeypatch):
    """What the services queue, recorded instead of sent: ("advance", search_id),
    ("train", trial_id), ("revoke", task_id, terminate)."""
    from webapp import dispatch
    from webapp.celery import app as celery_app

    calls = []

    def send_task(name, args, task_id=None):
        calls.append(("advance", args[0]) if name == dispatch.ADVANCE_SEARCH else ("train", args[0]))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    monkeypatch.setattr(dispatch, "revoke_tasks",
                        lambda task_ids, terminate: calls.extend(("revoke", t, terminate) for t in task_ids))
    return calls


# -- genotypes, cells and trials as rows, for the pages and the API ------------------------------


def _add_blocks() -> list[dict]:
    return [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"},
            {"inputs": [1, 2], "ops": ["avg_pool_3x3", "sep_conv_5x5"], "combine": "add"}]


@pytest.fixture
def add_genotype() -> dict:
    """Both cells add their inputs, so the genotype has a DARTS form."""
    return {"format": "cellsearch.nasnet/1", "normal": _add_blocks(), "reduction": _add_blocks()}


@pytest.fixture
def concat_genotype() -> dict:
    """The normal cell concatenates its one block: no DARTS form, and F = 4 × 1 × base filters."""
    return {"format": "cellsearch.nasnet/1", "reduction": _add_blocks(),
            "normal": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "concat"}]}


@pytest.fixture
def make_cell(db, add_genotype):
    """`make_cell(genotype=add_genotype)`: the genotype's Cell row, one per canonical hash."""
    from searchcore.spaces import parse_genotype
    from webapp.cells.models import Cell

    def make(genotype: dict | None = None):
        genotype = genotype or add_genotype
        cell_hash = parse_genotype(genotype).canonical_hash()
        return Cell.objects.get_or_create(cell_hash=cell_hash, defaults={"space": "nasnet", "genotype": genotype})[0]

    return make


@pytest.fixture
def make_trial(make_cell):
    """`make_trial(search, index, cell=None, status="finished", reward=None, **fields)`: a Trial row,
    of the add genotype's cell unless given; a finished trial's reward defaults to 0.5."""
    from webapp.trials.models import Trial

    def make(search, index, *, cell=None, status=Trial.Status.FINISHED, reward=None, **fields):
        cell = cell or make_cell()
        if status == Trial.Status.FINISHED and reward is None:
            reward = 0.5
        return Trial.objects.create(search=search, index=index, cell=cell, genotype=cell.genotype,
                                    cell_hash=fields.pop("cell_hash", None) or cell.cell_hash, status=status,
                                    reward=reward, val_acc=reward, **fields)

    return make


# -- transfers ------------------------------------------------------------------------------------


@pytest.fixture
def transfer_source(make_search, make_trial):
    """A finished trial of alice's team (the add genotype's cell), to start a transfer from."""
    return make_trial(make_search(), 0, reward=0.8)


@pytest.fixture
def team(user):
    """alice's team, team-a."""
    from webapp.teams.models import Team

    return Team.objects.get(name="team-a")


@pytest.fixture
def member_of(team):
    """`member_of(role)`: a new user in alice's team with that role."""
    from webapp.teams.services import user_create

    made = iter(range(100))

    def make(role: str):
        return user_create(username=f"{role}-{next(made)}", password="pw-123456789", team_name=team.name, role=role)

    return make


@pytest.fixture
def no_broker(monkeypatch):
    """Messages to the broker go nowhere: for tests that look only at the database."""
    from webapp.celery import app

    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    monkeypatch.setattr(app.control, "revoke", lambda *args, **kwargs: None)


def join_team(team, username: str, role: str):
    """A new user who belongs to `team` only, with `role`."""
    from webapp.teams.models import Membership
    from webapp.teams.services import membership_add, user_create

    person = user_create(username=username, password=f"{username}-password-1", team_name=f"{username}-own")
    Membership.objects.filter(user=person).delete()  # only in `team`
    membership_add(team=team, user=person, role=role)
    return person
