"""Asking ahead of need (CELLSEARCH_TRIALS_AHEAD): a search keeps trials asked beyond its
parallelism ("ready"), and the worker whose trial ends queues the next one itself, so no worker
waits for a control step between trials (issue 20)."""

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from tests.conftest import WorkerProcess, wait_until, worker_env
from webapp.searches.models import Search
from webapp.searches.services import search_cancel, search_steer
from webapp.searches.services.control import search_advance
from webapp.trials.models import Trial
from webapp.trials.services import ready_trials_queue

AHEAD = override_settings(CELLSEARCH_TRIALS_AHEAD=1)


def statuses(search: Search) -> dict[int, str]:
    return dict(search.trials.order_by("index").values_list("index", "status"))


def finish(search: Search, index: int) -> None:
    search.trials.filter(index=index).update(status=Trial.Status.FINISHED, reward=0.5, val_acc=0.5,
                                             finished_at=timezone.now())


def trained(sent) -> list[int]:
    """The trials sent to the gpu queue, by id."""
    return [call[1] for call in sent if call[0] == "train"]


@pytest.mark.django_db
@AHEAD
def test_a_step_asks_one_trial_ahead_that_a_trials_end_queues_within_the_parallelism(
        make_search, django_capture_on_commit_callbacks, sent):
    with django_capture_on_commit_callbacks(execute=True):
        search = make_search(budget=6, parallelism=2)
        search_advance(search_id=search.pk)
    assert statuses(search) == {0: "pending", 1: "pending", 2: "ready"}
    ready = search.trials.get(index=2)
    assert ready.task_id == "" and ready.pk not in trained(sent) and ready.params  # sized like any issued trial

    # Nothing ends: the parallelism holds, the ready trial stays.
    with django_capture_on_commit_callbacks(execute=True):
        assert ready_trials_queue(search_id=search.pk) == []
    search.trials.filter(index=0).update(status=Trial.Status.RUNNING)
    finish(search, 1)
    # What a worker does as its trial ends, before any control step.
    with django_capture_on_commit_callbacks(execute=True):
        queued = ready_trials_queue(search_id=search.pk)
    ready.refresh_from_db()
    assert queued == [(ready.pk, ready.task_id)] and ready.status == "pending" and ready.pk in trained(sent)
    assert ready.heartbeat_at is not None  # the reconciler's clock for a pending trial
    # The step tells trial 1 and asks the next one ahead.
    with django_capture_on_commit_callbacks(execute=True):
        search_advance(search_id=search.pk)
    assert statuses(search) == {0: "running", 1: "finished", 2: "pending", 3: "ready"}
    assert search.trials.get(index=1).told


@pytest.mark.django_db
@AHEAD
def test_a_raised_parallelism_queues_the_ready_trial_and_a_cancel_ends_it(
        make_search, user, django_capture_on_commit_callbacks, sent):
    with django_capture_on_commit_callbacks(execute=True):
        search = make_search(budget=6, parallelism=1)
        search_advance(search_id=search.pk)
    assert statuses(search) == {0: "pending", 1: "ready"}
    with django_capture_on_commit_callbacks(execute=True):
        search_steer(user=user, search=search, parallelism=2)  # its step runs once this commits
        search_advance(search_id=search.pk)
    assert statuses(search) == {0: "pending", 1: "pending", 2: "ready"}
    assert search.trials.get(index=1).pk in trained(sent)
    with django_capture_on_commit_callbacks(execute=True):
        search_cancel(search=search, user=user)
    assert set(statuses(search).values()) == {"cancelled"}


@pytest.mark.django_db
def test_without_asking_ahead_a_step_asks_only_on_need(make_search, django_capture_on_commit_callbacks, sent):
    with override_settings(CELLSEARCH_TRIALS_AHEAD=0), django_capture_on_commit_callbacks(execute=True):
        search = make_search(budget=6, parallelism=2)
        search_advance(search_id=search.pk)
    assert statuses(search) == {0: "pending", 1: "pending"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_on_a_real_worker_the_next_trial_trains_with_no_control_step(celery_broker, user, tmp_path, settings):
    """A gpu worker and no control worker at all: the step run here asks trial 0 and, ahead,
    trial 1; the worker trains trial 0, queues trial 1 as it ends, and trains it too. The control
    steps the trials' ends ask for never run, so nothing else is issued."""
    from webapp.searches.services import search_create

    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = str(media)
    with transaction.atomic():
        search = search_create(user=user, space="nasnet", strategy="random", dataset="digits", budget=4,
                               parallelism=1, seed=0, proxy={"epochs": 1, "cells": 1, "filters": 48,
                                                             "trainer": "noop"})
    with AHEAD:
        search_advance(search_id=search.pk)
    assert statuses(search) == {0: "pending", 1: "ready"}
    worker = WorkerProcess(worker_env(broker_url=celery_broker, media=media), tmp_path, name="gpu",
                           options=("-Q", "gpu"))
    worker.start()
    try:
        wait_until(lambda: statuses(search) == {0: "finished", 1: "finished"}, 60, "both trials to finish",
                   logs=worker.log)
    finally:
        worker.stop()
    first, second = search.trials.order_by("index")
    assert first.finished_at <= second.started_at  # one at a time: the parallelism held
    assert first.worker_label == second.worker_label and not first.told and not second.told
    assert Search.objects.get(pk=search.pk).trials_issued == 2
