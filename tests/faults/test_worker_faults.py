"""A gpu worker against real training-process failures: each attempt trains in a real child
process (tests/faults/targets.py), which crashes, hangs, or is stopped by a cancel.

Test settings: a trial silent for 2 s after an epoch (CELLSEARCH_MIN_STALL_SECONDS) counts as
hung, and the worker beats at most every second.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults.test_runner import alive
from webapp import dispatch
from webapp.searches.models import Search
from webapp.searches.services import search_cancel
from webapp.searches.services.control import search_advance
from webapp.searches.tasks import fail_search
from webapp.trials.models import Trial
from webapp.trials.services import trial_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch):
    """The Celery messages the services send, as (task name, args), kept here instead."""
    from webapp.celery import app

    messages: list[tuple[str, tuple]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **kwargs: messages.append((name, tuple(args))))
    return messages


@pytest.fixture
def trial(make_search, sent):
    """Trial 0 of a running search, its control steps and trainings recorded, not sent."""
    search = make_search(budget=3, parallelism=1)
    search_advance(search_id=search.pk)
    return search.trials.get(index=0)


@pytest.fixture
def target(monkeypatch):
    import searchcore.runner
    from tests.faults.test_runner import REPO

    monkeypatch.chdir(REPO)
    return lambda name: monkeypatch.setattr(searchcore.runner, "DEFAULT_TARGET", f"tests.faults.targets:{name}")


@pytest.fixture
def fault_file(tmp_path, monkeypatch):
    path = tmp_path / "fault"
    monkeypatch.setenv("CELLSEARCH_FAULT_FILE", str(path))
    return path


def test_a_training_that_aborts_is_retried_then_fails_with_its_signal_and_the_search_goes_on(trial, target, settings):
    settings.CELLSEARCH_MAX_ATTEMPTS = 2
    target("abort_in_second_epoch")
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.PENDING and trial.attempts == 1
    assert trial.error == ("training process crashed: signal 6 (SIGABRT): double free or corruption (!prev) "
                           "(attempt 1 of 2; queued again)")

    trial_run(trial_id=trial.pk)  # the message the first attempt queued
    trial.refresh_from_db()
    assert trial.status == Trial.Status.FAILED and trial.attempts == 2
    assert trial.error == "training process crashed: signal 6 (SIGABRT): double free or corruption (!prev) (attempt 2 of 2)"

    search_advance(search_id=trial.search_id)
    search = Search.objects.get(pk=trial.search_id)
    assert search.status == Search.Status.RUNNING and search.trials.get(index=1).status == Trial.Status.PENDING


def test_a_hung_training_is_killed_and_queued_again(trial, target, fault_file):
    target("hang_after_first_epoch")
    started = time.monotonic()
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert 2 <= time.monotonic() - started < 30
    assert trial.status == Trial.Status.PENDING and trial.attempts == 1
    assert trial.error.startswith("training process hung: no progress for ")
    assert trial.error.endswith("after epoch 1 (limit 2 s: 5 x its median epoch of 0.1 s, at least 2 s, at most 5 s); "
                                "killed (attempt 1 of 3; queued again)")
    assert not alive(int(fault_file.read_text()))


def test_cancel_kills_a_training_at_once(trial, target, fault_file):
    """Between epochs, yet still making progress: the next beat sees the cancel and kills it."""
    target("beat_forever")

    def cancel_soon() -> None:
        while not fault_file.exists() or not fault_file.read_text().strip():
            time.sleep(0.05)
        time.sleep(0.5)
        search_cancel(search=Search.objects.get(pk=trial.search_id))

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    started = time.monotonic()
    trial_run(trial_id=trial.pk)
    canceller.join()
    assert time.monotonic() - started < 20
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CANCELLED and trial.reward is None
    assert not alive(int(fault_file.read_text()))


def test_an_exception_in_the_child_fails_the_trial_and_aborts_the_search(trial, target, sent):
    """Bad settings (here a dataset missing on the worker) would fail every trial alike: the run
    is aborted, as the CLI loop stops, instead of failing its whole budget one trial at a time."""
    target("bad_settings")
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.FAILED and trial.attempts == 1
    assert trial.error == "FileNotFoundError: no CIFAR-10 batches in /nowhere"
    (fail,) = [args for name, args in sent if name == dispatch.FAIL_SEARCH]
    fail_search(*fail)  # what the control worker runs on that message
    search = Search.objects.get(pk=trial.search_id)
    assert search.status == Search.Status.FAILED
    assert search.error == "trial 0 aborted the search: FileNotFoundError: no CIFAR-10 batches in /nowhere"
