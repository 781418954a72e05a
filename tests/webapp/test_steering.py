"""Steering a running search (issue 18): its parallelism and budget, and cancelling one trial,
through the services, the API and the search page, and against a real worker. Each change is
in the search's activity with its actor."""

from __future__ import annotations

import io

import pytest
import torch
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import wait_until
from tests.webapp.conftest import join_team
from webapp.searches.models import Search
from webapp.searches.selectors import search_activity
from webapp.searches.services import search_cancel, search_create, search_steer, trial_cancel
from webapp.searches.services.control import search_advance
from webapp.searches.services.lifecycle import MAX_PARALLELISM
from webapp.trials.models import Trial


def log_of(search: Search) -> list[tuple[str, str]]:
    return [(e.user.get_username(), e.change_message) for e in search_activity(search=search)][::-1]


def in_flight(search: Search) -> list[int]:
    return list(search.trials.filter(status__in=Trial.IN_FLIGHT).order_by("index").values_list("index", flat=True))


def finish(trial: Trial, reward: float = 0.5) -> None:
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.FINISHED, reward=reward, val_acc=reward,
                                             finished_at=timezone.now())


def strategy_state(search: Search) -> dict:
    search.refresh_from_db()
    return torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True)


# -- services -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_raising_parallelism_queues_a_step_after_commit_that_issues_more(
        make_search, user, sent, django_capture_on_commit_callbacks):
    search = make_search(budget=10, parallelism=2)
    search_advance(search_id=search.pk)
    assert in_flight(search) == [0, 1]
    sent.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        search = search_steer(user=user, search=search, parallelism=4)
        assert sent == []  # nothing is sent before the commit
    for callback in callbacks:
        callback()
    assert sent == [("advance", search.pk)]
    assert search.parallelism == 4 and Search.objects.get(pk=search.pk).parallelism == 4
    search_advance(search_id=search.pk)
    assert in_flight(search) == [0, 1, 2, 3]
    assert log_of(search) == [("alice", "parallelism 2 → 4")]


@pytest.mark.django_db
def test_lowering_parallelism_lets_running_trials_finish(make_search, user, sent, django_capture_on_commit_callbacks):
    search = make_search(budget=10, parallelism=3)
    search_advance(search_id=search.pk)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        search_steer(user=user, search=search, parallelism=1)
    assert not [call for call in sent if call[0] == "revoke"]
    assert in_flight(search) == [0, 1, 2]  # nothing is killed
    finish(search.trials.get(index=0))
    search_advance(search_id=search.pk)
    assert in_flight(search) == [1, 2]  # no new trial while two are still in flight
    finish(search.trials.get(index=1))
    finish(search.trials.get(index=2))
    search_advance(search_id=search.pk)
    assert in_flight(search) == [3]


@pytest.mark.django_db
def test_budget_and_parallelism_bounds_name_the_field(make_search, user, sent):
    search = make_search(budget=10, parallelism=2)
    search_advance(search_id=search.pk)
    for _ in range(2):
        for trial in search.trials.filter(status=Trial.Status.PENDING):
            finish(trial)
        search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.trials_issued == 6
    cases = [
        ({"budget": 5}, "budget", "budget 5 is below the 6 trials already issued"),
        ({"budget": 0}, "budget", "must be a whole number from 1 to"),
        ({"parallelism": 0}, "parallelism", "must be a whole number from 1 to"),
        ({"parallelism": MAX_PARALLELISM + 1}, "parallelism", "must be a whole number from 1 to"),
        ({"parallelism": 8, "budget": 7}, "parallelism", "must not exceed the budget (7), got 8"),
        ({"budget": True}, "budget", "must be a whole number"),
    ]
    for kwargs, field, message in cases:
        with pytest.raises(ValidationError) as info:
            search_steer(user=user, search=search, **kwargs)
        assert list(info.value.message_dict) == [field], kwargs
        assert message in info.value.message_dict[field][0], kwargs
    search.refresh_from_db()
    assert (search.budget, search.parallelism) == (10, 2)
    assert log_of(search) == []
    # exactly what was issued is allowed: the search ends when those are told
    search_steer(user=user, search=search, budget=6)
    assert log_of(search) == [("alice", "budget 10 → 6")]


@pytest.mark.django_db
def test_a_viewer_may_not_steer_and_nothing_changes(make_search, team, member_of, sent):
    search = make_search(budget=10, parallelism=2)
    viewer = member_of("viewer")
    with pytest.raises(PermissionDenied, match="searches.steer needs the member role"):
        search_steer(user=viewer, search=search, budget=20)
    search_advance(search_id=search.pk)
    with pytest.raises(PermissionDenied):
        trial_cancel(user=viewer, trial=search.trials.get(index=0))
    search.refresh_from_db()
    assert search.budget == 10 and search.trials.get(index=0).status == Trial.Status.PENDING
    assert log_of(search) == []
    member = member_of("member")
    search_steer(user=member, search=search, budget=12)
    assert log_of(search) == [(member.get_username(), "budget 10 → 12")]


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_an_ended_search_cannot_be_steered(make_search, user, status):
    search = make_search(budget=4)
    Search.objects.filter(pk=search.pk).update(status=status)
    with pytest.raises(ValidationError) as info:
        search_steer(user=user, search=search, budget=8)
    assert list(info.value.message_dict) == ["status"]


@pytest.mark.django_db
def test_a_finished_search_extended_runs_again_from_its_strategy_state(
        make_search, user, sent, django_capture_on_commit_callbacks):
    search = make_search(budget=2, parallelism=2, strategy="evolution",
                         strategy_options={"population_size": 10, "sample_size": 2})
    search_advance(search_id=search.pk)
    for trial in search.trials.all():
        finish(trial, 0.25 + trial.index / 10)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED
    assert strategy_state(search)["next_trial_id"] == 2
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        search = search_steer(user=user, search=search, budget=4)
    assert search.status == Search.Status.RUNNING and search.finished_at is None
    assert sent == [("advance", search.pk)]
    search_advance(search_id=search.pk)
    assert in_flight(search) == [2, 3]
    state = strategy_state(search)
    assert state["next_trial_id"] == 4 and len(state["algorithm"]["population"]) == 2  # it went on, not anew
    for trial in search.trials.filter(status=Trial.Status.PENDING):
        finish(trial)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED and search.trials.filter(told=True).count() == 4
    assert log_of(search) == [("alice", "budget 2 → 4"), ("alice", "resumed: 2 more trials")]


@pytest.mark.django_db
def test_a_paused_search_takes_the_change_and_issues_on_resume(make_search, user, sent,
                                                              django_capture_on_commit_callbacks):
    from webapp.searches.services import search_pause, search_resume

    search = make_search(budget=10, parallelism=1)
    search_advance(search_id=search.pk)
    search_pause(search=search)
    with django_capture_on_commit_callbacks(execute=True):
        search_steer(user=user, search=search, parallelism=3)
    search_advance(search_id=search.pk)
    assert in_flight(search) == [0]
    search_resume(search=Search.objects.get(pk=search.pk))
    search_advance(search_id=search.pk)
    assert in_flight(search) == [0, 1, 2]


@pytest.mark.django_db
def test_cancelling_trials_revokes_them_and_tells_the_strategy_once_as_failed(
        make_search, user, sent, django_capture_on_commit_callbacks):
    search = make_search(budget=5, parallelism=3, strategy="evolution",
                         strategy_options={"population_size": 10, "sample_size": 2})
    search_advance(search_id=search.pk)
    pending, running, other = search.trials.order_by("index")
    Trial.objects.filter(pk=running.pk).update(status=Trial.Status.RUNNING, heartbeat_at=timezone.now())
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        trial_cancel(user=user, trial=pending)
        trial_cancel(user=user, trial=Trial.objects.get(pk=running.pk))
    assert sent == [("revoke", pending.task_id, False), ("advance", search.pk),
                    ("revoke", running.task_id, True), ("advance", search.pk)]
    for trial in (pending, running):
        trial.refresh_from_db()
        assert trial.status == Trial.Status.CANCELLED and trial.error == "cancelled by alice" and not trial.told
    with pytest.raises(ValidationError) as info:
        trial_cancel(user=user, trial=pending)
    assert info.value.message_dict == {"status": ["trial 0 has already ended (cancelled)"]}

    search_advance(search_id=search.pk)
    assert search.trials.filter(status=Trial.Status.CANCELLED, told=True).count() == 2
    assert in_flight(search) == [2, 3, 4]  # their slots went to new trials; the budget counts them
    state = strategy_state(search)
    assert set(state["pending"]) == {2, 3, 4}  # 0 and 1 were told
    search_advance(search_id=search.pk)  # told once: a second step tells nothing again
    assert strategy_state(search) == state
    assert log_of(search) == [("alice", "trial 0 cancelled"), ("alice", "trial 1 cancelled")]

    for trial in search.trials.filter(status=Trial.Status.PENDING):
        finish(trial)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED and search.trials_issued == 5


@pytest.mark.django_db
def test_a_waiting_repeat_can_be_cancelled_and_its_source_is_not_touched(make_search, make_trial, user, sent):
    search = make_search(budget=4, parallelism=2)
    search.trials_issued = 2
    search.status = Search.Status.RUNNING
    search.save()
    source = make_trial(search, 0, status=Trial.Status.RUNNING, task_id="task-0")
    waiting = make_trial(search, 1, status=Trial.Status.WAITING, reused_from=source)
    trial_cancel(user=user, trial=waiting)
    waiting.refresh_from_db()
    source.refresh_from_db()
    assert waiting.status == Trial.Status.CANCELLED and source.status == Trial.Status.RUNNING
    assert not [call for call in sent if call[0] == "revoke"]


@pytest.mark.django_db
def test_trials_cancelled_with_their_search_are_never_told(make_search, user, sent):
    search = make_search(budget=4, parallelism=2)
    search_advance(search_id=search.pk)
    state = bytes(Search.objects.get(pk=search.pk).strategy_state)
    search_cancel(search=search)
    assert search_advance(search_id=search.pk) == []
    search.refresh_from_db()
    assert bytes(search.strategy_state) == state
    assert not search.trials.filter(told=True).exists()
    with pytest.raises(ValidationError):  # nothing left to cancel
        trial_cancel(user=user, trial=search.trials.get(index=0))


# -- API ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_patch_steers_and_400s_name_the_field(api, make_search, sent):
    search = make_search(budget=10, parallelism=2)
    search_advance(search_id=search.pk)
    url = f"/api/searches/{search.pk}/"
    response = api.patch(url, {"parallelism": 4, "budget": 20}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["parallelism"], response.json()["budget"]) == (4, 20)
    assert log_of(search) == [("alice", "parallelism 2 → 4"), ("alice", "budget 10 → 20")]

    response = api.patch(url, {"budget": 1}, format="json")
    assert response.status_code == 400
    assert response.json() == {"budget": ["budget 1 is below the 2 trials already issued"]}
    response = api.patch(url, {"parallelism": "many"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["parallelism"]
    response = api.patch(url, {"parallelism": 0}, format="json")
    assert response.status_code == 400 and "from 1 to" in response.json()["parallelism"][0]
    assert api.get(url).json()["budget"] == 20


@pytest.mark.django_db
def test_api_trial_cancel(api, make_search, sent):
    search = make_search(budget=4, parallelism=2)
    search_advance(search_id=search.pk)
    trial = search.trials.get(index=1)
    response = api.post(f"/api/trials/{trial.pk}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    response = api.post(f"/api/trials/{trial.pk}/cancel/")
    assert response.status_code == 400 and list(response.json()) == ["status"]
    assert log_of(search) == [("alice", "trial 1 cancelled")]


@pytest.mark.django_db
def test_api_viewer_is_refused_and_another_team_sees_nothing(make_search, team, other_user, sent):
    search = make_search(budget=4, parallelism=2)
    search_advance(search_id=search.pk)
    trial = search.trials.get(index=0)
    viewer = APIClient()
    viewer.force_login(join_team(team, "vera", "viewer"))
    assert viewer.patch(f"/api/searches/{search.pk}/", {"budget": 8}, format="json").status_code == 403
    assert viewer.post(f"/api/trials/{trial.pk}/cancel/").status_code == 403
    stranger = APIClient()
    stranger.force_login(other_user)
    assert stranger.patch(f"/api/searches/{search.pk}/", {"budget": 8}, format="json").status_code == 404
    assert stranger.post(f"/api/trials/{trial.pk}/cancel/").status_code == 404
    assert APIClient().post(f"/api/trials/{trial.pk}/cancel/").status_code in (401, 403)
    search.refresh_from_db()
    trial.refresh_from_db()
    assert search.budget == 4 and trial.status == Trial.Status.PENDING and log_of(search) == []


# -- the search page ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_form_errors_and_success(client, user, make_search, sent):
    search = make_search(budget=10, parallelism=2)
    search_advance(search_id=search.pk)
    client.force_login(user)
    page = client.get(f"/searches/{search.pk}/").content.decode()
    assert 'id="steer-form"' in page and 'name="parallelism"' in page and 'value="2"' in page
    assert "No changes yet." in page

    response = client.post(f"/searches/{search.pk}/steer/", {"parallelism": 2, "budget": 1})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="errors-budget"' in html and "budget 1 is below the 2 trials already issued" in html
    response = client.post(f"/searches/{search.pk}/steer/", {"parallelism": "", "budget": 10})
    assert response.status_code == 400 and 'id="errors-parallelism"' in response.content.decode()

    response = client.post(f"/searches/{search.pk}/steer/", {"parallelism": 3, "budget": 12}, follow=True)
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == f"/searches/{search.pk}/"
    assert "Search steered: parallelism 3, budget 12." in html
    assert "alice: parallelism 2 → 3" in html and "alice: budget 10 → 12" in html


@pytest.mark.django_db
def test_page_cancel_trial_button(client, user, make_search, team, sent):
    search = make_search(budget=4, parallelism=2)
    search_advance(search_id=search.pk)
    trial = search.trials.get(index=1)
    client.force_login(user)
    page = client.get(f"/searches/{search.pk}/").content.decode()
    action = f'action="/searches/{search.pk}/trials/{trial.pk}/cancel/"'
    assert action in page and 'data-confirm="Cancel trial 1?' in page
    response = client.post(f"/searches/{search.pk}/trials/{trial.pk}/cancel/", follow=True)
    html = response.content.decode()
    assert "Trial 1 cancelled." in html and "alice: trial 1 cancelled" in html
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CANCELLED

    viewer = join_team(team, "vic", "viewer")
    client.force_login(viewer)
    page = client.get(f"/searches/{search.pk}/").content.decode()
    assert 'id="steer-form"' not in page and "Cancel trial" not in page
    other = search.trials.get(index=0)
    response = client.post(f"/searches/{search.pk}/trials/{other.pk}/cancel/", follow=True)
    assert "searches.steer needs the member role or above" in response.content.decode()
    response = client.post(f"/searches/{search.pk}/steer/", {"parallelism": 1, "budget": 4}, follow=True)
    assert "searches.steer needs the member role or above" in response.content.decode()
    other.refresh_from_db()
    assert other.status == Trial.Status.PENDING and Search.objects.get(pk=search.pk).parallelism == 2


# -- against a real worker -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_steering_a_search_on_a_real_worker(celery_worker_process, user, tiny_proxy, client):
    """Raising the parallelism mid-search (PATCH from the API) puts more trials in flight at once;
    the budget extended, the search runs to it; a running trial cancelled from the search page
    is told as failed and the search still finishes its budget."""
    with transaction.atomic():
        search = search_create(user=user, space="nasnet", strategy="random", dataset="digits", budget=3,
                               parallelism=1, seed=5, proxy={**tiny_proxy, "epochs": 3})
    log = celery_worker_process.log
    wait_until(lambda: search.trials.filter(status=Trial.Status.RUNNING).exists(), 120, "a trial to be training",
               logs=log)
    assert len(in_flight(search)) == 1

    api = APIClient()
    api.force_login(user)
    response = api.patch(f"/api/searches/{search.pk}/", {"parallelism": 3, "budget": 5}, format="json")
    assert response.status_code == 200, response.content
    wait_until(lambda: len(in_flight(search)) > 1, 60, "more trials in flight after the raise", logs=log)

    client.force_login(user)

    def cancel_a_running_trial():
        trial = search.trials.filter(status=Trial.Status.RUNNING).exclude(epochs=[]).first()
        if trial is None:
            return None
        client.post(f"/searches/{search.pk}/trials/{trial.pk}/cancel/")
        trial.refresh_from_db()
        return trial if trial.status == Trial.Status.CANCELLED else None  # else it ended just now

    running = wait_until(cancel_a_running_trial, 120, "a running trial to cancel", logs=log)
    assert running.status == Trial.Status.CANCELLED

    def ended():
        search.refresh_from_db()
        return search.status in Search.ENDED

    wait_until(ended, 240, "the search to end", logs=log)
    assert search.status == Search.Status.FINISHED, search.error
    trials = list(search.trials.order_by("index"))
    assert len(trials) == 5 and search.trials_issued == 5 and all(t.told for t in trials)
    running.refresh_from_db()
    assert running.status == Trial.Status.CANCELLED and len(running.epochs) < 3
    assert sorted(t.status for t in trials) == ["cancelled"] + ["finished"] * 4
    assert [message for _, message in log_of(search)] == ["parallelism 1 → 3", "budget 3 → 5",
                                                          f"trial {running.index} cancelled"]
