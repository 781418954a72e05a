"""searches.services: creating and steering searches, and the control step (search_advance).

Trials are "trained" here by writing their results straight into the database, so the
control loop's bookkeeping is tested without a worker.
"""

import io

import pytest
import torch
from django.core.exceptions import ValidationError
from django.utils import timezone

from searchcore.spaces import create_space
from searchcore.strategies import create_strategy
from webapp import dispatch
from webapp.celery import app as celery_app
from webapp.cells.models import Cell
from webapp.searches.models import Search
from webapp.searches.selectors import compare_curves, search_progress
from webapp.searches.services import search_cancel, search_pause, search_resume
from webapp.searches.services.control import search_advance
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """What the services queue, recorded instead of sent: ("advance", search_id), ("train", trial_id, task_id),
    ("revoke", task_id)."""
    calls = []

    def send_task(name, args, task_id=None):
        calls.append(("advance", args[0]) if name == dispatch.ADVANCE_SEARCH else ("train", args[0], task_id))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    monkeypatch.setattr(dispatch, "revoke_tasks",
                        lambda task_ids, terminate: calls.extend(("revoke", t, terminate) for t in task_ids))
    return calls


def finish(trial: Trial, reward: float) -> None:
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.FINISHED, reward=reward, val_acc=reward,
                                             params=1000, mult_adds=2000, finished_at=timezone.now())


def fail(trial: Trial) -> None:
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.FAILED, error="Boom: it broke",
                                             finished_at=timezone.now())


def strategy_of(search: Search):
    search.refresh_from_db()
    strategy = create_strategy(search.strategy, create_space(search.space, **search.space_options),
                               seed=search.seed, **search.strategy_options)
    strategy.load_state_dict(torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True))
    return strategy


def in_flight(search: Search) -> list[int]:
    return list(search.trials.filter(status__in=Trial.IN_FLIGHT).order_by("index").values_list("index", flat=True))


# -- search_create --------------------------------------------------------------------------------


def test_create_stores_a_queued_search_of_the_users_team(make_search, user, django_capture_on_commit_callbacks,
                                                         sent):
    with django_capture_on_commit_callbacks(execute=True):
        search = make_search(name="first", strategy_options={"max_attempts": 10})
    assert search.status == Search.Status.QUEUED
    assert search.team == user.teams.get()
    assert search.owner == user
    assert search.dataset == "digits" and "dataset" not in search.proxy and search.proxy["epochs"] == 1
    assert search.proxy_config.dataset == "digits"
    assert len(search.proxy_key) == 64
    assert search.strategy_options == {"max_attempts": 10}
    assert sent == [("advance", search.pk)]


def test_proxy_key_identifies_the_full_proxy(make_search):
    a, b = make_search(), make_search(seed=3)
    c = make_search(proxy={"epochs": 2, "cells": 1, "filters": 48, "batch_size": 128})
    d = make_search(proxy={"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128, "lr": 0.05})  # the default
    assert a.proxy_key == b.proxy_key == d.proxy_key
    assert a.proxy_key != c.proxy_key


@pytest.mark.parametrize(("overrides", "field"), [
    ({"strategy": "annealing"}, "strategy"),
    ({"strategy_options": {"population": 3}}, "strategy_options"),
    ({"strategy": "evolution", "strategy_options": {"population_size": "many"}}, "strategy_options"),
    ({"space": "hexagons"}, "space"),
    ({"space_options": {"num_blocks": 0}}, "space_options"),
    ({"space_options": {"colour": "red"}}, "space_options"),
    ({"proxy": {"epochs": 0}}, "proxy.epochs"),
    ({"proxy": {"epochs": "3"}}, "proxy.epochs"),
    ({"proxy": {"filters": 50}}, "proxy.filters"),
    ({"proxy": {"speed": 11}}, "proxy.speed"),
    ({"proxy": {"data_root": "/etc"}}, "proxy.data_root"),
    ({"proxy": {"device": "tpu"}}, "proxy.device"),
    ({"proxy": {"dataset_options": {"colour": True}}}, "proxy.dataset_options"),
    ({"proxy": {"dataset": "cifar10"}, "dataset": "nope"}, "dataset"),
    ({"dataset": "imagenet-22k"}, "dataset"),
    ({"budget": 0, "parallelism": 1}, "budget"),
    ({"budget": 3, "parallelism": 4}, "parallelism"),
    ({"parallelism": 0}, "parallelism"),
    ({"seed": -1}, "seed"),
])
def test_create_names_the_field_at_fault(make_search, overrides, field):
    with pytest.raises(ValidationError) as info:
        make_search(**overrides)
    assert field in info.value.message_dict, info.value.message_dict
    assert Search.objects.count() == 0


def test_create_reports_every_field_at_fault(make_search):
    with pytest.raises(ValidationError) as info:
        make_search(strategy="annealing", budget=2, parallelism=3, proxy={"epochs": 0})
    assert {"strategy", "parallelism", "proxy.epochs"} <= set(info.value.message_dict)


# -- the control step -----------------------------------------------------------------------------


def test_advance_keeps_parallelism_in_flight_tells_once_and_finishes_at_budget(
        make_search, django_capture_on_commit_callbacks, sent):
    search = make_search(budget=5, parallelism=2)
    with django_capture_on_commit_callbacks(execute=True):
        created = search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.RUNNING and search.started_at is not None
    assert search.trials_issued == 2 and in_flight(search) == [0, 1]
    trials = {t.pk: t for t in search.trials.all()}
    assert sorted(created) == sorted(trials)
    assert sorted(s for s in sent if s[0] == "train") == sorted(("train", t.pk, t.task_id) for t in trials.values())
    assert all(t.task_id for t in trials.values())
    assert Cell.objects.filter(cell_hash__in=[t.cell_hash for t in trials.values()]).count() == 2

    state = bytes(search.strategy_state)
    assert search_advance(search_id=search.pk) == []  # nothing to tell, nothing to ask
    search.refresh_from_db()
    assert bytes(search.strategy_state) == state and search.trials_issued == 2

    rewards = {}
    for step in range(3):
        trial = search.trials.filter(status=Trial.Status.PENDING).order_by("index").first()
        rewards[trial.index] = 0.5 + step / 10
        finish(trial, rewards[trial.index])
        search_advance(search_id=search.pk)
        state = bytes(Search.objects.get(pk=search.pk).strategy_state)
        search_advance(search_id=search.pk)  # a duplicate step tells nothing twice
        search.refresh_from_db()
        assert bytes(search.strategy_state) == state
        assert search.status == Search.Status.RUNNING, search.error
        assert len(in_flight(search)) == 2
        assert sorted(strategy_of(search).pending) == in_flight(search)
    assert search.trials_issued == 5
    assert search.trials.filter(told=True).count() == 3

    for trial in search.trials.filter(status=Trial.Status.PENDING):
        finish(trial, 0.9)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED and search.finished_at is not None
    assert search.trials.count() == 5 and search.trials.filter(told=True).count() == 5
    assert strategy_of(search).pending == []
    assert search_advance(search_id=search.pk) == []  # a finished search stays as it is


def test_a_failed_trial_is_told_none_and_the_search_goes_on(make_search):
    search = make_search(budget=3, parallelism=1)
    search_advance(search_id=search.pk)
    fail(search.trials.get(index=0))
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.RUNNING
    assert search.trials.get(index=0).told
    assert in_flight(search) == [1]
    assert strategy_of(search).pending == [1]


def test_the_strategy_state_survives_the_round_trips(make_search):
    """The web loop (state saved and reloaded every step) asks exactly what one live strategy asks."""
    options = {"population_size": 3, "sample_size": 2}
    search = make_search(strategy="evolution", strategy_options=options, budget=7, parallelism=1, seed=5)
    live = create_strategy("evolution", create_space("nasnet"), seed=5, **options)
    for index in range(7):
        search_advance(search_id=search.pk)
        trial = search.trials.get(index=index)
        proposal = live.ask()
        assert (trial.cell_hash, trial.genotype) == (proposal.cell_hash, proposal.genotype.to_dict())
        reward = (index * 37 % 11) / 11
        finish(trial, reward)
        live.tell(index, reward)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED
    assert strategy_of(search).state_dict().keys() == live.state_dict().keys()


def test_a_cell_already_trained_by_the_team_under_the_same_proxy_is_reused(make_search, other_user):
    first = make_search(budget=3, parallelism=3)
    search_advance(search_id=first.pk)
    for trial in first.trials.all():
        finish(trial, 0.1 * (trial.index + 1))
    search_advance(search_id=first.pk)

    again = make_search(budget=3, parallelism=1)  # same seed and strategy: the same three cells
    queued = search_advance(search_id=again.pk)
    again.refresh_from_db()
    assert queued == []
    assert again.status == Search.Status.FINISHED
    for trial in again.trials.select_related("reused_from"):
        source = first.trials.get(index=trial.index)
        assert trial.reused_from == source and trial.reward == source.reward and trial.told
        assert trial.status == Trial.Status.FINISHED and trial.cell_id == source.cell_id

    other_proxy = make_search(budget=1, parallelism=1, proxy={"epochs": 2, "cells": 1, "filters": 48})
    other_team = make_search(user=other_user, budget=1, parallelism=1)
    for search in (other_proxy, other_team):
        assert len(search_advance(search_id=search.pk)) == 1
        assert search.trials.get().reused_from is None


def test_an_exhausted_strategy_ends_the_search_early_not_as_a_failure(make_search):
    search = make_search(budget=12, parallelism=12, space_options={"num_blocks": 1, "ops": ["identity"],
                                                                   "combines": ["add"]},
                         strategy_options={"reject_duplicates": True, "max_attempts": 30})  # 9 distinct cells exist
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.RUNNING and search.trials.count() == 9
    assert search.budget == 9 and search.error.startswith("ended after 9 of 12 trials: ")
    for trial in search.trials.all():
        finish(trial, 0.5)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED


def test_a_strategy_error_fails_the_search(make_search):
    search = make_search(budget=4, parallelism=2)
    Search.objects.filter(pk=search.pk).update(strategy_state=b"not a saved strategy")
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FAILED
    assert search.error.startswith("could not load the strategy: ")
    assert search.trials.count() == 0  # the step that failed left nothing behind


# -- pause, resume, cancel ------------------------------------------------------------------------


def test_pause_asks_nothing_new_but_still_tells(make_search, django_capture_on_commit_callbacks, sent):
    search = make_search(budget=4, parallelism=2)
    search_advance(search_id=search.pk)
    search = search_pause(search=Search.objects.get(pk=search.pk))
    assert search.status == Search.Status.PAUSED
    finish(search.trials.get(index=0), 0.5)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.PAUSED and search.trials_issued == 2
    assert search.trials.get(index=0).told

    with django_capture_on_commit_callbacks(execute=True):
        search = search_resume(search=search)
    assert search.status == Search.Status.RUNNING
    assert sent == [("advance", search.pk)]
    search_advance(search_id=search.pk)
    assert in_flight(search) == [1, 2]


def test_a_queued_search_paused_and_resumed_is_queued_again(make_search):
    search = search_pause(search=make_search())
    assert search_resume(search=search).status == Search.Status.QUEUED


def test_cancel_cancels_waiting_and_running_trials_and_revokes_the_running(
        make_search, django_capture_on_commit_callbacks, sent):
    search = make_search(budget=4, parallelism=3)
    search_advance(search_id=search.pk)
    finish(search.trials.get(index=0), 0.5)
    running = search.trials.get(index=1)
    Trial.objects.filter(pk=running.pk).update(status=Trial.Status.RUNNING, heartbeat_at=timezone.now())
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        search = search_cancel(search=Search.objects.get(pk=search.pk))
    assert search.status == Search.Status.CANCELLED and search.finished_at is not None
    statuses = dict(search.trials.values_list("index", "status"))
    assert statuses == {0: "finished", 1: "cancelled", 2: "cancelled"}
    assert sent == [("revoke", running.task_id, True)]
    state = bytes(search.strategy_state)
    assert search_advance(search_id=search.pk) == []
    search.refresh_from_db()
    assert bytes(search.strategy_state) == state and not search.trials.get(index=0).told


@pytest.mark.parametrize(("status", "action"), [
    ("finished", search_pause), ("cancelled", search_pause), ("paused", search_pause),
    ("running", search_resume), ("queued", search_resume), ("failed", search_resume),
    ("finished", search_cancel), ("cancelled", search_cancel), ("failed", search_cancel),
])
def test_invalid_transitions_name_the_status(make_search, status, action):
    search = make_search()
    Search.objects.filter(pk=search.pk).update(status=status)
    search.refresh_from_db()
    with pytest.raises(ValidationError) as info:
        action(search=search)
    assert "status" in info.value.message_dict
    search.refresh_from_db()
    assert search.status == status


def test_the_services_import_no_torch():
    """The web process imports these modules; torch is for workers only."""
    import subprocess
    import sys

    code = ("import sys, django; django.setup(); import webapp.searches.services, webapp.searches.tasks, "
            "webapp.trials.services, webapp.trials.tasks, webapp.cells.services; "
            "from searchcore.proxy import ProxyConfig; "
            "from webapp.searches.services import validate_search_config as v; "
            "v(space='nasnet', strategy='ppo', dataset='digits', budget=3, parallelism=1, seed=0, proxy={}, "
            "space_options={}, strategy_options={}); "
            "sys.exit(3 if 'torch' in sys.modules else 0)")
    env = {**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test"}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120, check=False).returncode == 0


def test_a_search_whose_first_trials_all_fail_stops_with_the_first_error(make_search):
    search = make_search(budget=10, parallelism=3)
    search_advance(search_id=search.pk)
    for trial in search.trials.all():
        fail(trial)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FAILED
    assert search.error == ("the first 3 trials all failed, so the settings are likely at fault; "
                            "the first error: Boom: it broke")


def test_one_finished_trial_keeps_a_search_going_through_failures(make_search):
    search = make_search(budget=10, parallelism=3)
    search_advance(search_id=search.pk)
    first, *others = search.trials.order_by("index")
    finish(first, 0.5)
    for trial in others:
        fail(trial)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.RUNNING and len(in_flight(search)) == 3


@pytest.mark.parametrize(("space_options", "message"), [
    ({"num_blocks": 10**20}, "num_blocks must be a whole number in 1..8"),
    ({"ops": []}, "ops must be a non-empty list"),
    ({"ops": "conv_1x1"}, "ops must be a non-empty list"),
])
def test_space_options_that_would_exhaust_memory_or_break_sampling_are_refused(make_search, space_options, message):
    with pytest.raises(ValidationError) as caught:
        make_search(space_options=space_options)
    assert message in caught.value.message_dict["space_options"][0]


# -- repeated cells -------------------------------------------------------------------------------

#: The NAS-v1 macro space cut to one layer and one choice per decision: every ask is the same cell.
ONE_CELL = {"space": "macro", "space_options": {"num_layers": 1, "filter_sizes": [1], "num_filters": [24]}}


def trials_of(search: Search) -> dict[int, tuple]:
    """index -> (status, reused_from's index, reward, told) of every trial."""
    rows = search.trials.values_list("index", "status", "reused_from__index", "reward", "told")
    return {index: tuple(rest) for index, *rest in rows}


def test_a_repeat_of_a_finished_trial_of_the_same_search_reuses_its_result(make_search):
    search = make_search(budget=12, parallelism=1, space_options={"num_blocks": 1, "ops": ["identity"],
                                                                  "combines": ["add"]})  # 9 genotypes
    for _ in range(12):
        search_advance(search_id=search.pk)
        for trial in search.trials.filter(status=Trial.Status.PENDING):
            finish(trial, 0.1 + trial.index / 100)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED and search.trials_issued == 12 == search.trials.count()
    trained = {}
    for trial in search.trials.order_by("index").select_related("reused_from"):
        source = trained.setdefault(trial.cell_hash, trial)
        assert trial.status == Trial.Status.FINISHED and trial.told
        if source is not trial:
            assert trial.reused_from == source and trial.reward == source.reward and trial.epochs == source.epochs
    assert len(trained) < 12
    assert search.trials.filter(reused_from__isnull=True).count() == len(trained)  # each cell trained once
    assert strategy_of(search).pending == []
    curves = compare_curves(searches=[search], ks=[1])["runs"][0]["curves"]["1"]
    assert len(curves) == 12  # Figure 6: every sampled model counts, reused or not


def test_a_repeat_of_a_cell_in_flight_waits_and_copies_its_result(make_search, sent,
                                                                   django_capture_on_commit_callbacks):
    search = make_search(**ONE_CELL, budget=5, parallelism=3)
    with django_capture_on_commit_callbacks(execute=True):
        queued = search_advance(search_id=search.pk)
    first = search.trials.get(index=0)
    assert queued == [first.pk] and [s[1] for s in sent if s[0] == "train"] == [first.pk]
    assert trials_of(search) == {0: ("pending", None, None, False), 1: ("waiting", 0, None, False),
                                 2: ("waiting", 0, None, False)}
    assert search_progress(search=search)["pending"] == 3
    assert search_advance(search_id=search.pk) == []  # nothing ended: the repeats keep waiting
    assert search.trials.filter(status=Trial.Status.WAITING).count() == 2

    Trial.objects.filter(pk=first.pk).update(status=Trial.Status.RUNNING)
    finish(first, 0.7)
    assert search_advance(search_id=search.pk) == []  # no training queued: everything is a copy
    search.refresh_from_db()
    assert trials_of(search) == {i: ("finished", None if i == 0 else 0, 0.7, True) for i in range(5)}
    assert search.status == Search.Status.FINISHED and search.trials_issued == 5
    assert strategy_of(search).pending == []
    copy = search.trials.get(index=1)
    assert (copy.val_acc, copy.params, copy.mult_adds) == (0.7, 1000, 2000) and copy.seconds == 0


def test_when_the_trial_a_repeat_waits_on_fails_the_repeat_trains(make_search, sent,
                                                                   django_capture_on_commit_callbacks):
    """A failure on a worker need not be the cell's: it is not copied. One repeat trains, the
    others wait on it; the search does not count the repeats as failures."""
    search = make_search(**ONE_CELL, budget=6, parallelism=3)
    search_advance(search_id=search.pk)
    fail(search.trials.get(index=0))
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        queued = search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.RUNNING, search.error
    promoted = search.trials.get(index=1)
    assert queued == [promoted.pk] and sent == [("train", promoted.pk, promoted.task_id)]
    assert promoted.heartbeat_at is not None  # queued now, as far as the reconciler is concerned
    assert trials_of(search) == {0: ("failed", None, None, True), 1: ("pending", None, None, False),
                                 2: ("waiting", 1, None, False), 3: ("waiting", 1, None, False)}
    assert sorted(strategy_of(search).pending) == [1, 2, 3]

    fail(promoted)
    search_advance(search_id=search.pk)  # two failures of three trials so far: it goes on
    assert trials_of(search)[2] == ("pending", None, None, False)
    finish(search.trials.get(index=2), 0.4)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    statuses = trials_of(search)
    assert statuses[3] == ("finished", 2, 0.4, True)
    assert [statuses[i] for i in (4, 5)] == [("finished", 2, 0.4, True)] * 2  # 4 waited on 2; 5 was copied at once
    assert search.status == Search.Status.FINISHED and search.trials_issued == 6


@pytest.mark.parametrize("end", ["cancel", "strategy error"])
def test_waiting_trials_end_with_their_search(make_search, end):
    search = make_search(**ONE_CELL, budget=5, parallelism=3)
    search_advance(search_id=search.pk)
    if end == "cancel":
        search_cancel(search=Search.objects.get(pk=search.pk))
    else:
        Search.objects.filter(pk=search.pk).update(strategy_state=b"not a saved strategy")
        search_advance(search_id=search.pk)
    assert set(search.trials.values_list("status", flat=True)) == {Trial.Status.CANCELLED}


def test_a_paused_search_still_copies_results_into_its_waiting_trials(make_search):
    search = make_search(**ONE_CELL, budget=5, parallelism=2)
    search_advance(search_id=search.pk)
    search_pause(search=Search.objects.get(pk=search.pk))
    finish(search.trials.get(index=0), 0.6)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert trials_of(search) == {0: ("finished", None, 0.6, True), 1: ("finished", 0, 0.6, True)}
    assert search.status == Search.Status.PAUSED and search.trials_issued == 2
