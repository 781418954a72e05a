"""Forking a search from chosen trials (issue 18): through the service and the control step, the
API and the pages. The real-worker run is in test_enqueue.py, after the enqueued cell it forks
from."""

from __future__ import annotations

import io

import pytest
import torch
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from tests.webapp.conftest import join_team
from webapp.searches.models import Search
from webapp.searches.selectors import search_activity
from webapp.searches.services import search_fork
from webapp.searches.services.control import search_advance
from webapp.trials.models import Trial


def finish_in_flight(search: Search, reward_of=lambda index: 0.1 * (index + 1)) -> None:
    """Every trial in flight finishes, rewarded by its index; then one control step."""
    for trial in search.trials.filter(status__in=Trial.IN_FLIGHT):
        Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.FINISHED, reward=reward_of(trial.index),
                                                 val_acc=reward_of(trial.index), finished_at=timezone.now())
    search_advance(search_id=search.pk)


def ran(make_search, **overrides) -> Search:
    """A search run to the end of its budget in process, trial i rewarded 0.1 (i + 1)."""
    search = make_search(**{"budget": 4, "parallelism": 2, **overrides})
    search_advance(search_id=search.pk)
    while search.trials.filter(status__in=Trial.IN_FLIGHT).exists():
        finish_in_flight(search)
    search.refresh_from_db()
    assert search.status == Search.Status.FINISHED
    return search


def state_of(search: Search) -> dict:
    search.refresh_from_db()
    return torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True)


def lines(search: Search) -> list[str]:
    return [entry.change_message for entry in search_activity(search=search)][::-1]


@pytest.mark.django_db
def test_an_evolution_fork_starts_from_the_chosen_cells_and_copies_their_results(
        make_search, user, sent, django_capture_on_commit_callbacks):
    parent = ran(make_search, strategy="evolution", strategy_options={"population_size": 2, "sample_size": 2})
    chosen = [parent.trials.get(index=3), parent.trials.get(index=1)]
    with django_capture_on_commit_callbacks(execute=True):
        fork = search_fork(user=user, search=parent, trials=[3, 1], budget=4, parallelism=1,
                           strategy_options={"population_size": 2, "sample_size": 1})
    assert (fork.forked_from, fork.forked_trials, fork.strategy_options) == (
        parent, [3, 1], {"population_size": 2, "sample_size": 1})
    assert fork.seed == parent.seed + 1 and fork.proxy_key == parent.proxy_key and fork.team == parent.team
    assert ("advance", fork.pk) in sent

    search_advance(search_id=fork.pk)
    trials = list(fork.trials.order_by("index"))
    # the chosen cells come first, copied from the parent's trials; then one drawn cell trains
    assert [(t.cell_hash, t.status, t.reused_from_id, t.reward) for t in trials[:2]] == [
        (c.cell_hash, Trial.Status.FINISHED, c.pk, c.reward) for c in chosen]
    assert trials[2].status == Trial.Status.PENDING and len(trials) == 3
    population = state_of(fork)["algorithm"]["population"]
    assert [(m["cell_hash"], m["reward"]) for m in population] == [(c.cell_hash, c.reward) for c in chosen]
    assert state_of(fork)["next_trial_id"] == 3
    assert lines(parent) == [f"forked into search {fork.pk} from trials 3, 1"]
    assert lines(fork) == [f"forked from search {parent.pk} at trials 3, 1"]

    while fork.trials.filter(status__in=Trial.IN_FLIGHT).exists():
        finish_in_flight(fork)
    fork.refresh_from_db()
    assert fork.status == Search.Status.FINISHED and fork.trials.count() == 4


@pytest.mark.django_db
def test_a_controller_fork_keeps_the_parents_policy(make_search, user, sent):
    parent = ran(make_search, strategy="reinforce", strategy_options={"batch_size": 2})
    fork = search_fork(user=user, search=parent, trials=[2], budget=3, strategy_options={"lr": 0.01})
    search_advance(search_id=fork.pk)
    mine, theirs = state_of(fork)["algorithm"], state_of(parent)["algorithm"]
    for name, tensor in theirs["policy"].items():
        assert torch.equal(mine["policy"][name], tensor), name
    assert mine["baseline"] == theirs["baseline"]
    first = fork.trials.get(index=0)
    assert first.reused_from == parent.trials.get(index=2)
    assert state_of(fork)["pending"].keys() == {1, 2}  # parallelism 2, as the parent's


@pytest.mark.django_db
def test_bad_forks_name_the_field_and_create_nothing(make_search, user, team, sent):
    parent = ran(make_search, strategy="reinforce", strategy_options={"batch_size": 2})
    Trial.objects.filter(search=parent, index=0).update(status=Trial.Status.FAILED, reward=None)
    cases = [
        ({"trials": []}, "trials", "give the indices"),
        ({"trials": [9]}, "trials", "has no trial 9"),
        ({"trials": [-1]}, "trials", "has no trial -1"),
        ({"trials": [0]}, "trials", "trial 0 has no result to start from (failed)"),
        ({"trials": [1, 1]}, "trials", "each trial once"),
        ({"trials": [1, 2], "budget": 1}, "budget", "below the 2 trials the fork starts from"),
        ({"trials": [1], "budget": 0}, "budget", "must be a whole number"),
        ({"trials": [1], "parallelism": 5, "budget": 2}, "parallelism", "must not exceed the budget"),
        ({"trials": [1], "strategy_options": {"hidden_size": 8}}, "strategy_options",
         "hidden_size must stay 35 (the parent's), got 8"),
        ({"trials": [1], "strategy_options": {"lr": -1}}, "strategy_options", "lr must be positive"),
    ]
    for kwargs, field, reason in cases:
        with pytest.raises(ValidationError) as caught:
            search_fork(user=user, search=parent, **kwargs)
        assert reason in caught.value.message_dict[field][0], kwargs

    unstarted = make_search()
    with pytest.raises(ValidationError, match="has not started"):
        search_fork(user=user, search=unstarted, trials=[0])
    with pytest.raises(PermissionDenied):
        search_fork(user=join_team(team, "vera", "viewer"), search=parent, trials=[1])
    assert Search.objects.count() == 2 and lines(parent) == []


@pytest.mark.django_db
def test_api_fork_201_400_403_404_and_the_activity(make_search, user, team, other_user, sent):
    parent = ran(make_search)
    api = APIClient()
    api.force_login(user)
    response = api.post(f"/api/searches/{parent.pk}/fork/", {"trials": [3], "name": "from 3"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["forked_from"], body["forked_trials"], body["budget"], body["status"]) == (
        "from 3", parent.pk, [3], parent.budget, "queued")

    for payload, field in (({"trials": "3"}, "trials"), ({}, "trials"), ({"trials": [3], "budget": "x"}, "budget"),
                           ({"trials": [3], "strategy_options": []}, "strategy_options")):
        response = api.post(f"/api/searches/{parent.pk}/fork/", payload, format="json")
        assert response.status_code == 400 and list(response.json()) == [field], (payload, response.content)

    activity = api.get(f"/api/searches/{parent.pk}/activity/").json()
    assert [(row["user"], row["message"]) for row in activity["results"]] == [
        ("alice", f"forked into search {body['id']} from trials 3")]
    api.post(f"/api/searches/{body['id']}/pause/")
    activity = api.get(f"/api/searches/{body['id']}/activity/").json()
    assert [row["message"] for row in activity["results"]] == ["paused", f"forked from search {parent.pk} at trials 3"]

    viewer = APIClient()
    viewer.force_login(join_team(team, "vera", "viewer"))
    assert viewer.post(f"/api/searches/{parent.pk}/fork/", {"trials": [3]}, format="json").status_code == 403
    stranger = APIClient()
    stranger.force_login(other_user)
    assert stranger.post(f"/api/searches/{parent.pk}/fork/", {"trials": [3]}, format="json").status_code == 404
    assert stranger.get(f"/api/searches/{parent.pk}/activity/").status_code == 404
    assert Search.objects.count() == 2


@pytest.mark.django_db
def test_fork_pages_from_the_trial_page_to_the_forks_page(client, make_search, user, team, sent):
    parent = ran(make_search, strategy="evolution", strategy_options={"population_size": 2, "sample_size": 2})
    best = parent.trials.get(index=3)
    client.force_login(user)
    trial_page = client.get(f"/trials/{best.pk}/").content.decode()
    assert f'href="/searches/{parent.pk}/fork/?trials=3"' in trial_page
    assert 'id="fork-search"' in client.get(f"/searches/{parent.pk}/").content.decode()

    form = client.get(f"/searches/{parent.pk}/fork/?trials=3").content.decode()
    assert 'value="3"' in form and "Its population starts from the cells of the trials you choose" in form
    response = client.post(f"/searches/{parent.pk}/fork/", {"trials": "3, x"})
    assert response.status_code == 400 and "Give trial indices separated by commas" in response.content.decode()
    response = client.post(f"/searches/{parent.pk}/fork/", {"trials": "3", "strategy_options": '{"sample_size": 9}'})
    assert response.status_code == 400 and "sample_size must be in 1..population_size" in response.content.decode()

    response = client.post(f"/searches/{parent.pk}/fork/", {"trials": "3, 2", "budget": "6"}, follow=True)
    fork = Search.objects.get(forked_from=parent)
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == f"/searches/{fork.pk}/" and fork.budget == 6
    assert "forked from" in html and f'href="/searches/{parent.pk}/"' in html and "trials 3, 2" in html
    assert f"alice: forked from search {parent.pk} at trials 3, 2" in html
    assert f'href="/searches/{fork.pk}/"' in client.get(f"/searches/{parent.pk}/").content.decode()

    client.force_login(join_team(team, "vic", "viewer"))
    assert 'id="fork-trial"' not in client.get(f"/trials/{best.pk}/").content.decode()
    response = client.get(f"/searches/{parent.pk}/fork/", follow=True)
    assert "searches.launch needs the member role or above" in response.content.decode()
