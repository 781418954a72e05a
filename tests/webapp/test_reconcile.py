"""searches.services.searches_reconcile: the database is the source of truth."""

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp import dispatch
from webapp.celery import app as celery_app
from webapp.searches.models import Search
from webapp.searches.services.control import search_advance
from webapp.searches.services.reconcile import searches_reconcile
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls = []

    def send_task(name, args, task_id=None):
        calls.append(("advance", args[0]) if name == dispatch.ADVANCE_SEARCH else ("train", args[0], task_id))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return calls


@pytest.fixture
def queue_size(monkeypatch):
    """The gpu queue's size as the reconciler sees it (None: the broker cannot say)."""
    size = {"value": 0}
    monkeypatch.setattr(dispatch, "gpu_queue_size", lambda: size["value"])
    return size


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def running_search(make_search, **overrides) -> Search:
    search = make_search(**{"budget": 4, "parallelism": 2, **overrides})
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    return search


def test_a_trial_whose_worker_stopped_beating_is_queued_again(
        make_search, sent, queue_size, settings, django_capture_on_commit_callbacks):
    search = running_search(make_search)
    dead, alive = search.trials.order_by("index")
    timeout = settings.CELLSEARCH_HEARTBEAT_TIMEOUT
    Trial.objects.filter(pk=dead.pk).update(status="running", worker="gone:1", heartbeat_at=ago(timeout + 1),
                                            attempts=1)
    Trial.objects.filter(pk=alive.pk).update(status="running", worker="here:2", heartbeat_at=ago(timeout - 2),
                                             attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        done = searches_reconcile()
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert done["requeued"] == [dead.pk]
    assert dead.status == Trial.Status.PENDING and dead.worker == "" and dead.task_id != ""
    assert dead.heartbeat_at > ago(2)  # when it was queued again
    assert ("train", dead.pk, dead.task_id) in sent
    assert alive.status == Trial.Status.RUNNING and alive.worker == "here:2"
    assert not any(s[0] == "train" and s[1] == alive.pk for s in sent)


def test_a_trial_that_keeps_killing_its_workers_fails(make_search, sent, queue_size, settings):
    settings.CELLSEARCH_MAX_ATTEMPTS = 2
    search = running_search(make_search, parallelism=1)
    trial = search.trials.get()
    Trial.objects.filter(pk=trial.pk).update(status="running", heartbeat_at=ago(60), attempts=2, error=(
        "its worker stopped beating in attempt 1 of 2 (the worker process died, or lost its database); queued again"))
    done = searches_reconcile()
    trial.refresh_from_db()
    assert done["failed"] == [trial.pk] and done["requeued"] == []
    assert trial.status == Trial.Status.FAILED
    assert trial.error == ("its worker stopped beating in attempt 2 of 2 (the worker process died, or lost its "
                           "database); before that: its worker stopped beating in attempt 1 of 2 (the worker "
                           "process died, or lost its database); queued again")
    assert done["nudged"] == [search.pk]  # its failure is told at once
    search_advance(search_id=search.pk)
    assert search.trials.get(index=1).status == Trial.Status.PENDING


def test_long_waiting_trials_are_queued_again_only_when_messages_look_lost(
        make_search, sent, queue_size, settings, django_capture_on_commit_callbacks):
    search = running_search(make_search)
    old = ago(settings.CELLSEARCH_PENDING_TIMEOUT + 1)
    Trial.objects.filter(search=search).update(created_at=old)
    first_ids = dict(search.trials.values_list("pk", "task_id"))

    queue_size["value"] = 2  # both messages still wait in the queue: nothing lost
    with django_capture_on_commit_callbacks(execute=True):
        assert searches_reconcile()["requeued"] == []
    assert dict(search.trials.values_list("pk", "task_id")) == first_ids

    queue_size["value"] = 0  # Redis came back empty
    with django_capture_on_commit_callbacks(execute=True):
        requeued = searches_reconcile()["requeued"]
    assert sorted(requeued) == sorted(first_ids)
    trials = list(search.trials.all())
    assert all(t.status == Trial.Status.PENDING and t.task_id != first_ids[t.pk] for t in trials)
    assert sorted(s[1] for s in sent if s[0] == "train") == sorted(first_ids)

    # Queued again just now: not again at the next round.
    with django_capture_on_commit_callbacks(execute=True):
        assert searches_reconcile()["requeued"] == []


def test_recent_waiting_trials_are_left_alone(make_search, sent, queue_size):
    running_search(make_search)
    assert searches_reconcile()["requeued"] == []


def test_waiting_trials_of_ended_searches_are_not_queued_again_but_paused_ones_are(
        make_search, sent, queue_size, settings, django_capture_on_commit_callbacks):
    searches = {}
    for seed, status in enumerate((Search.Status.PAUSED, Search.Status.CANCELLED, Search.Status.FAILED)):
        searches[status] = running_search(make_search, seed=seed)
        Search.objects.filter(pk=searches[status].pk).update(status=status)
        Trial.objects.filter(search=searches[status]).update(created_at=ago(settings.CELLSEARCH_PENDING_TIMEOUT + 1))
    with django_capture_on_commit_callbacks(execute=True):
        requeued = searches_reconcile()["requeued"]
    assert sorted(requeued) == sorted(searches[Search.Status.PAUSED].trials.values_list("pk", flat=True))


def test_stalled_searches_get_a_control_step(make_search, sent, queue_size, django_capture_on_commit_callbacks):
    seeds = iter(range(100))  # different cells in each search, so none reuses another's results

    def start(**overrides):
        return running_search(make_search, seed=next(seeds), **overrides)

    queued = make_search()  # its first message was lost
    full = start()  # parallelism trials in flight, nothing to tell
    untold = start()
    Trial.objects.filter(search=untold, index=0).update(status="finished", reward=0.5)
    paused = start()
    Trial.objects.filter(search=paused, index=0).update(status="failed")
    Search.objects.filter(pk=paused.pk).update(status="paused")
    paused_idle = start()
    Search.objects.filter(pk=paused_idle.pk).update(status="paused")
    room = start(budget=4, parallelism=2)
    Trial.objects.filter(search=room, index=0).update(status="finished", reward=0.5, told=True)
    finished = start()
    Search.objects.filter(pk=finished.pk).update(status="finished")
    Trial.objects.filter(search=finished).update(status="finished", reward=0.1)
    assert not Trial.objects.filter(reused_from__isnull=False).exists()
    assert full.trials.filter(status="pending").count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        nudged = searches_reconcile()["nudged"]
    assert sorted(nudged) == sorted([queued.pk, untold.pk, paused.pk, room.pk])
    assert sorted(s[1] for s in sent if s[0] == "advance") == sorted(nudged)


def test_the_reconcile_task_runs_the_service(make_search, sent, queue_size):
    from webapp.searches.tasks import reconcile

    search = make_search()
    assert reconcile.run() == {"requeued": [], "failed": [], "nudged": [search.pk], "supernets_requeued": [],
                               "supernets_failed": []}


@pytest.mark.parametrize("ended", [Search.Status.FAILED, Search.Status.CANCELLED])
def test_a_dead_workers_trial_in_an_ended_search_is_closed_not_queued(
        make_search, sent, queue_size, settings, django_capture_on_commit_callbacks, ended):
    search = running_search(make_search)
    trial = search.trials.order_by("index").first()
    Trial.objects.filter(pk=trial.pk).update(status="running", worker="gone:1", attempts=1,
                                             heartbeat_at=ago(settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1))
    Search.objects.filter(pk=search.pk).update(status=ended)
    with django_capture_on_commit_callbacks(execute=True):
        done = searches_reconcile()
    trial.refresh_from_db()
    assert trial.pk not in done["requeued"] and not [c for c in sent if c[0] == "train"]
    assert trial.status == Trial.Status.CANCELLED and ended in trial.error


def test_a_trial_waiting_for_its_cells_first_trial_is_never_sent_to_a_worker(
        make_search, sent, queue_size, settings, django_capture_on_commit_callbacks):
    # A one-layer macro space with one choice per decision: the second ask repeats the first cell.
    search = running_search(make_search, space="macro", budget=2,
                            space_options={"num_layers": 1, "filter_sizes": [1], "num_filters": [24]})
    assert dict(search.trials.values_list("index", "status")) == {0: "pending", 1: "waiting"}
    Trial.objects.filter(search=search).update(created_at=ago(settings.CELLSEARCH_PENDING_TIMEOUT + 1))
    with django_capture_on_commit_callbacks(execute=True):
        done = searches_reconcile()
    assert done["requeued"] == [search.trials.get(index=0).pk]
    assert search.trials.get(index=1).status == Trial.Status.WAITING
