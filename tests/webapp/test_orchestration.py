"""The control loop end to end: a real Redis, a real Celery worker process, real training.

The worker shares this test's SQLite file; the test commits through the services exactly as
the web process does, then watches the database.
"""

import io
import time

import pytest
import torch
from django.db import transaction
from django.utils import timezone

from tests.conftest import wait_until
from webapp.cells.models import CellResult
from webapp.searches.models import Search
from webapp.searches.services import search_cancel, search_create
from webapp.trials.models import Trial

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def in_flight(search: Search) -> int:
    return search.trials.filter(status__in=Trial.IN_FLIGHT).count()


def test_a_search_runs_to_its_budget_on_a_real_worker(celery_worker_process, user, tiny_proxy):
    with transaction.atomic():
        search = search_create(user=user, space="nasnet", strategy="evolution", dataset="digits", budget=4,
                               parallelism=2, seed=1, proxy=tiny_proxy,
                               strategy_options={"population_size": 10, "sample_size": 2})
    most_in_flight = 0

    def ended():
        nonlocal most_in_flight
        most_in_flight = max(most_in_flight, in_flight(search))
        search.refresh_from_db()
        return search.status in Search.ENDED

    wait_until(ended, 180, "the search to end", logs=celery_worker_process.log)
    assert search.status == Search.Status.FINISHED, search.error
    assert search.started_at <= search.finished_at <= timezone.now()
    assert search.trials_issued == 4 and 1 <= most_in_flight <= 2

    trials = list(search.trials.order_by("index"))
    assert [t.index for t in trials] == [0, 1, 2, 3]
    for trial in trials:
        assert trial.status == Trial.Status.FINISHED and trial.told, (trial.status, trial.error)
        assert 0 <= trial.reward <= 1 and trial.params > 0 and len(trial.epochs) == 1
        assert trial.worker and trial.attempts == 1 and trial.task_id

    state = torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True)
    assert state["next_trial_id"] == 4 and state["pending"] == {}
    told = {member["cell_hash"]: member["reward"] for member in state["algorithm"]["population"]}
    assert told == {t.cell_hash: t.reward for t in trials}  # each result told exactly once

    results = CellResult.objects.filter(team=search.team, proxy_key=search.proxy_key)
    assert sorted(r.best_trial_id for r in results) == sorted(t.pk for t in trials)


def training_trial(search: Search) -> Trial | None:
    """A trial of the search that a worker is training and has finished an epoch of."""
    return search.trials.filter(status=Trial.Status.RUNNING).exclude(epochs=[]).first()


def test_cancel_terminates_the_running_trial(celery_worker_process, user, tiny_proxy):
    with transaction.atomic():
        search = search_create(user=user, space="nasnet", strategy="random", dataset="digits", budget=2,
                               parallelism=1, seed=3, proxy={**tiny_proxy, "epochs": 50})

    trial = wait_until(lambda: training_trial(search), 120, "a trial to be training", logs=celery_worker_process.log)
    with transaction.atomic():
        search_cancel(search=search)
    wait_until(lambda: f"Terminating {trial.task_id}" in celery_worker_process.log(), 30,
               "the worker to terminate the task", logs=celery_worker_process.log)
    epochs = len(Trial.objects.get(pk=trial.pk).epochs)
    time.sleep(3)  # a terminated trial writes no more epochs
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CANCELLED and len(trial.epochs) == epochs < 50
    assert search.trials.count() == 1

    # The worker carries on with other work.
    with transaction.atomic():
        other = search_create(user=user, space="nasnet", strategy="random", dataset="digits", budget=1,
                              parallelism=1, seed=4, proxy=tiny_proxy)

    def ended():
        other.refresh_from_db()
        return other.status in Search.ENDED

    wait_until(ended, 120, "the next search to end", logs=celery_worker_process.log)
    assert other.status == Search.Status.FINISHED
