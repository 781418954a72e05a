"""One-shot searches in the web app: launch through the API with validation at the edge, the
control step that starts the supernet run and later issues its top cells as trials, the gpu
worker's run (the real runner and supernet, a tiny config), pause/resume/cancel, a lost
attempt resumed from the stored checkpoint, the reconciler, the page and the cost.

Tests commit (transaction=True), as a worker does. The real-worker test at the end goes through
Redis and a Celery worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import wait_until
from webapp import dispatch
from webapp.celery import app as celery_app
from webapp.searches.models import OneShotRun, Search
from webapp.searches.selectors import search_cost
from webapp.searches.services import search_cancel, search_pause, search_resume
from webapp.searches.services.control import search_advance
from webapp.searches.services.oneshot import oneshot_reconcile, oneshot_run
from webapp.trials.models import Trial
from webapp.trials.services import trial_run

pytestmark = pytest.mark.django_db(transaction=True)

#: A supernet of one cell with 4 base filters, in a space of 2 blocks and 3 ops: seconds an epoch on digits.
TINY = {"epochs": 1, "cells": 1, "base_filters": 4, "batch_size": 256, "device": "cpu"}
SMALL_SPACE = {"num_blocks": 2, "ops": ["identity", "sep_conv_3x3", "max_pool_3x3"]}
ONESHOT = {"controller": "reinforce", "epochs": 2, "controller_steps": 2, "final_samples": 4}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def messages(monkeypatch):
    """The messages the services send, (task name, first argument), instead of a broker."""
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, args=(), **kw: sent.append((name, args[0])))
    monkeypatch.setattr(celery_app.control, "revoke", lambda *a, **k: None)
    return sent


def launch(api, **body) -> Search:
    response = api.post("/api/searches/", {"space": "nasnet", "strategy": "enas", "dataset": "digits", "budget": 2,
                                           "parallelism": 2, "seed": 0, "proxy": TINY,
                                           "space_options": SMALL_SPACE, "strategy_options": ONESHOT, **body}, format="json")
    assert response.status_code == 201, response.json()
    return Search.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"strategy_options": {**ONESHOT, "controller": "evolution"}}, "strategy_options.controller", "reinforce, ppo"),
    ({"strategy_options": {"steps": 3}}, "strategy_options.steps", "not an option of one-shot search"),
    ({"strategy_options": {"epochs": 0}}, "strategy_options.epochs", "epochs must be in 1.."),
    ({"budget": 5, "strategy_options": {"final_samples": 4}}, "budget", "the budget must be 1 to 4"),
    ({"proxy": {**TINY, "drop_path_keep": 0.9}}, "proxy.drop_path_keep", "not shared by a supernet"),
    ({"strategy": "oneshot-random", "strategy_options": {"controller": "ppo"}}, "strategy_options.controller",
     "oneshot-random has no controller"),
])
def test_bad_settings_are_a_400_naming_the_field(api, messages, body, field, words):
    response = api.post("/api/searches/", {"space": "nasnet", "strategy": "enas", "dataset": "digits", "budget": 2,
                                           "parallelism": 1, "seed": 0, "proxy": TINY,
                                           "strategy_options": ONESHOT, **body}, format="json")
    assert response.status_code == 400
    errors = response.json()
    for key in field.split("."):
        errors = errors[key]
    assert words in errors[0]
    assert not Search.objects.exists() and not messages


def test_a_one_shot_search_ranks_cells_on_a_supernet_then_trains_the_best_as_trials(api, messages):
    search = launch(api)
    assert messages == [(dispatch.ADVANCE_SEARCH, search.pk)]

    search_advance(search_id=search.pk)  # the first step starts the supernet, asks no strategy
    run = OneShotRun.objects.get(search=search)
    assert (run.status, run.config["sampler"], run.config["top_k"]) == ("pending", "enas", 2)
    assert run.config["proxy"]["epochs"] == 2 and run.config["controller_steps"] == 2
    assert messages[-1] == (dispatch.TRAIN_ONESHOT, run.pk) and not search.trials.exists()
    search_advance(search_id=search.pk)  # a second step changes nothing: one run, one message
    assert OneShotRun.objects.count() == 1 and len(messages) == 2

    run = oneshot_run(run_id=run.pk)  # the real runner: a child process trains the supernet
    assert run.status == OneShotRun.Status.FINISHED, run.error
    assert [e["epoch"] for e in run.epochs] == [1, 2] and run.checkpoint_epoch == 2 and run.last_checkpoint
    assert all(e["leaders"] and 0 <= e["sampled_val_acc"] <= e["best_val_acc"] <= 1 for e in run.epochs)
    assert len(run.final) == 4 and 1 <= len(run.top) <= 2 and run.gpu_seconds > 0 and run.device == "cpu"
    assert oneshot_run(run_id=run.pk) is None  # a duplicate message finds nothing to claim
    assert messages[-1] == (dispatch.ADVANCE_SEARCH, search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.RUNNING and search.started_at is not None

    search_advance(search_id=search.pk)  # the ranking's best cells become ordinary trials, best first
    trials = list(search.trials.order_by("index"))
    assert [(t.cell_hash, t.shared_weight_acc) for t in trials] == [(c["cell_hash"], c["val_acc"]) for c in run.top]
    assert all(t.status == Trial.Status.PENDING for t in trials)
    for trial in trials:
        assert trial_run(trial_id=trial.pk).status == Trial.Status.FINISHED
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED, search.error
    assert search.budget == len(run.top)  # fewer unique cells than asked end it early, with the reason
    trained = sum(search.trials.values_list("gpu_seconds", flat=True))
    assert trained > 0 and search_cost(search=search)["gpu_hours"] * 3600 == pytest.approx(run.gpu_seconds + trained,
                                                                                           abs=0.01)

    page = api.get(f"/searches/{search.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Supernet" in html and "shared-weight" in html
    body = api.get(f"/api/searches/{search.pk}/").json()
    assert body["oneshot"]["status"] == "finished" and len(body["oneshot"]["epochs"]) == 2
    listed = api.get(f"/api/searches/{search.pk}/trials/").json()["results"]
    assert {t["shared_weight_acc"] for t in listed} == {c["val_acc"] for c in run.top}


def test_pause_stops_the_supernet_after_its_epoch_and_resume_goes_on(api, messages):
    search = launch(api, strategy_options={**ONESHOT, "epochs": 2})
    search_advance(search_id=search.pk)
    run = OneShotRun.objects.get(search=search)
    with transaction.atomic():
        search_pause(search=search)
    run.refresh_from_db()
    assert run.status == OneShotRun.Status.PAUSED  # queued: paused at once, its message dropped
    assert oneshot_run(run_id=run.pk) is None

    with transaction.atomic():
        search_resume(search=search)
    run.refresh_from_db()
    assert run.status == OneShotRun.Status.PENDING and messages[-1] == (dispatch.TRAIN_ONESHOT, run.pk)
    with transaction.atomic():  # a pause asked while it trains: its worker stops after the epoch
        OneShotRun.objects.filter(pk=run.pk).update(pause_requested=True)
    run = oneshot_run(run_id=run.pk)
    assert (run.status, run.checkpoint_epoch) == ("paused", 1)

    with transaction.atomic():
        search_cancel(search=search)
    run.refresh_from_db()
    assert run.status == OneShotRun.Status.CANCELLED and run.last_checkpoint  # its checkpoint stays
    search_advance(search_id=search.pk)
    assert not search.trials.exists()


def test_a_run_whose_worker_died_too_often_fails_its_search(api, messages, settings):
    search = launch(api)
    search_advance(search_id=search.pk)
    silent = timezone.now() - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 5)
    OneShotRun.objects.filter(search=search).update(status=OneShotRun.Status.RUNNING, heartbeat_at=silent,
                                                    attempts=1)
    done = oneshot_reconcile()
    run = OneShotRun.objects.get(search=search)
    assert done["requeued"] == [run.pk] and run.status == OneShotRun.Status.PENDING

    OneShotRun.objects.filter(pk=run.pk).update(status=OneShotRun.Status.RUNNING, heartbeat_at=silent,
                                                attempts=settings.CELLSEARCH_MAX_ATTEMPTS)
    assert oneshot_reconcile()["failed"] == [run.pk]
    search.refresh_from_db()
    assert search.status == Search.Status.FAILED and "the supernet failed: its worker stopped beating" in search.error


def test_per_trial_steering_is_refused_with_the_reason(api, messages, add_genotype):
    search = launch(api)
    for url, body, field in ((f"/api/searches/{search.pk}/", {"budget": 3}, "budget"),
                             (f"/api/searches/{search.pk}/enqueue/", {"genotype": add_genotype}, "status"),
                             (f"/api/searches/{search.pk}/fork/", {"trials": [0]}, "trials")):
        response = api.patch(url, body, format="json") if "budget" in body else api.post(url, body, format="json")
        assert response.status_code == 400, (url, response.json())
        assert "a one-shot search takes no" in response.json()[field][0]
    assert api.patch(f"/api/searches/{search.pk}/", {"parallelism": 1}, format="json").status_code == 200


@pytest.mark.slow
def test_a_tiny_one_shot_search_through_the_api_and_a_real_worker_ends_with_its_top_cells_trained(
        celery_worker_process, user):
    """Redis, a Celery worker on the control and gpu queues, the real supernet and trainer."""
    client = APIClient()
    client.force_login(user)
    search = launch(client, strategy="oneshot-random", strategy_options={"epochs": 1, "final_samples": 3})

    def ended() -> bool:
        search.refresh_from_db()
        return search.status in Search.ENDED

    wait_until(ended, 240, "the one-shot search to end", logs=celery_worker_process.log)
    assert search.status == Search.Status.FINISHED, search.error
    run = OneShotRun.objects.get(search=search)
    assert run.status == OneShotRun.Status.FINISHED and run.attempts == 1 and len(run.epochs) == 1
    trials = list(search.trials.order_by("index"))
    assert [(t.cell_hash, t.shared_weight_acc) for t in trials] == [(c["cell_hash"], c["val_acc"]) for c in run.top]
    for trial in trials:
        assert trial.status == Trial.Status.FINISHED and trial.told and 0 <= trial.reward <= 1 and trial.params > 0
    body = client.get(f"/api/searches/{search.pk}/").json()
    assert body["status"] == "finished" and body["oneshot"]["top"] == run.top
    assert body["cost"]["gpu_hours"] * 3600 >= run.gpu_seconds + sum(t.gpu_seconds for t in trials) - 0.01
