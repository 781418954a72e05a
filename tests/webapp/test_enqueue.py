"""Enqueueing a cell by hand (issue 18): the steering service parses it (genotype JSON, a DARTS
string, or one of the team's cells by hash) and checks it against the search's space without
torch; the next control step hands it to the strategy, whose next trial trains it. Through the
service, the API, the search page and a real worker."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from searchcore.spaces import create_space
from tests.conftest import wait_until
from tests.webapp.conftest import join_team
from webapp.cells.services import cell_result_update
from webapp.searches.models import Search
from webapp.searches.selectors import search_activity
from webapp.searches.services import search_create, search_enqueue
from webapp.searches.services.control import search_advance
from webapp.trials.models import Trial


def hand_cell(seed: int = 7, *, add_only: bool = False) -> dict:
    """A cell of the default nasnet space (all blocks adding when `add_only`: DARTS can say it)."""
    genotype = create_space("nasnet").sample(np.random.default_rng(seed))
    data = genotype.to_dict()
    if add_only:
        for name in ("normal", "reduction"):
            for block in data[name]:
                block["combine"] = "add"
    return data


def hash_of(data: dict) -> str:
    return create_space("nasnet").genotype_from_dict(data).canonical_hash()


def log_of(search: Search) -> list[str]:
    return [entry.change_message for entry in search_activity(search=search)][::-1]


def strategy_state(search: Search) -> dict:
    search.refresh_from_db()
    return torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True)


def finish(trial: Trial, reward: float = 0.5) -> None:
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.FINISHED, reward=reward, val_acc=reward,
                                             finished_at=timezone.now())


# -- the service ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_json_dict_and_text_are_queued_and_logged_and_a_step_is_queued_after_commit(
        make_search, user, sent, django_capture_on_commit_callbacks):
    search = make_search(budget=10, parallelism=1)
    cell = hand_cell()
    with django_capture_on_commit_callbacks(execute=True):
        result = search_enqueue(user=user, search=search, genotype=cell)
    assert result == {"cell_hash": hash_of(cell), "enqueued": 1}
    assert sent == [("advance", search.pk)]
    other = hand_cell(8)
    assert search_enqueue(user=user, search=search, genotype=json.dumps(other))["enqueued"] == 2
    search.refresh_from_db()
    assert [hash_of(d) for d in search.enqueued_cells] == [hash_of(cell), hash_of(other)]
    assert search.strategy_state is None  # only the control step touches the strategy
    assert log_of(search) == [f"cell {hash_of(cell)[:8]} enqueued", f"cell {hash_of(other)[:8]} enqueued"]


@pytest.mark.django_db
def test_darts_string_and_a_team_cell_by_hash(make_search, user, other_user, sent):
    from searchcore.spaces.nasnet.genotype import Genotype

    search = make_search(budget=10, parallelism=1)
    cell = hand_cell(add_only=True)
    darts = Genotype.from_dict(cell).to_darts()
    assert search_enqueue(user=user, search=search, darts=darts)["cell_hash"] == hash_of(cell)
    # a DARTS string in the genotype field (the page's textarea takes both)
    assert search_enqueue(user=user, search=search, genotype=darts)["cell_hash"] == hash_of(cell)

    search_advance(search_id=search.pk)
    trial = search.trials.get(index=0)
    finish(trial)
    trial.refresh_from_db()
    cell_result_update(trial=trial)
    assert search_enqueue(user=user, search=search, cell_hash=trial.cell_hash)["cell_hash"] == trial.cell_hash
    with pytest.raises(ValidationError) as info:
        search_enqueue(user=user, search=search, cell_hash="0" * 64)
    assert info.value.message_dict == {"cell_hash": [f"no cell {'0' * 16!r} among your teams' cells"]}
    bobs = search_create(user=other_user, space="nasnet", strategy="random", dataset="digits", budget=4,
                         parallelism=1, seed=0, proxy={"epochs": 1, "cells": 1, "filters": 48})
    with pytest.raises(ValidationError) as info:  # another team's cell is not bob's to name
        search_enqueue(user=other_user, search=bobs, cell_hash=trial.cell_hash)
    assert list(info.value.message_dict) == ["cell_hash"]


@pytest.mark.django_db
def test_bad_cells_are_refused_with_the_reason(make_search, user, sent):
    search = make_search(budget=10, parallelism=1)

    def reason(**given) -> dict:
        with pytest.raises(ValidationError) as info:
            search_enqueue(user=user, search=search, **given)
        return info.value.message_dict

    assert list(reason()) == ["genotype"]
    assert list(reason(genotype=hand_cell(), darts="x")) == ["genotype"]
    assert "format" in reason(genotype={"format": "nope"})["genotype"][0]
    assert list(reason(genotype="{not json")) == ["genotype"]
    assert list(reason(genotype=[1, 2])) == ["genotype"]
    assert list(reason(darts="Genotype(normal=")) == ["darts"]
    too_many = hand_cell()
    too_many["normal"] = too_many["normal"][:2]
    assert reason(genotype=too_many)["genotype"] == [
        "this cell is not one of the search's space (nasnet): normal cell: has 2 blocks, this space has 5"]
    odd_op = hand_cell()
    odd_op["normal"][0]["ops"][0] = "sep_conv_9x9"
    assert list(reason(genotype=odd_op)) == ["genotype"]
    search.refresh_from_db()
    assert search.enqueued_cells == [] and log_of(search) == []


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["finished", "cancelled", "failed"])
def test_an_ended_search_takes_no_cell(make_search, user, status):
    search = make_search(budget=4)
    Search.objects.filter(pk=search.pk).update(status=status)
    with pytest.raises(ValidationError) as info:
        search_enqueue(user=user, search=search, genotype=hand_cell())
    assert list(info.value.message_dict) == ["status"]


@pytest.mark.django_db
def test_no_cell_beyond_the_budget_and_a_viewer_is_refused(make_search, member_of, user, sent):
    search = make_search(budget=2, parallelism=1)
    search_advance(search_id=search.pk)
    search_enqueue(user=user, search=search, genotype=hand_cell())
    with pytest.raises(ValidationError, match="no budget left") as info:
        search_enqueue(user=user, search=search, genotype=hand_cell(8))
    assert list(info.value.message_dict) == ["status"]
    with pytest.raises(PermissionDenied, match="searches.steer needs the member role"):
        search_enqueue(user=member_of("viewer"), search=search, genotype=hand_cell())
    search.refresh_from_db()
    assert len(search.enqueued_cells) == 1


# -- the control step hands it over ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_next_trial_trains_the_enqueued_cell(make_search, user, sent):
    search = make_search(budget=6, parallelism=1)
    search_advance(search_id=search.pk)
    cell = hand_cell()
    search_enqueue(user=user, search=search, genotype=cell)
    search_advance(search_id=search.pk)  # one in flight: handed over, nothing issued
    search.refresh_from_db()
    assert search.enqueued_cells == [] and search.trials.count() == 1
    assert [hash_of(d) for d in strategy_state(search)["enqueued"]] == [hash_of(cell)]
    finish(search.trials.get(index=0))
    search_advance(search_id=search.pk)
    trial = search.trials.get(index=1)
    assert trial.cell_hash == hash_of(cell) and trial.status == Trial.Status.PENDING
    state = strategy_state(search)
    assert state["enqueued"] == [] and state["pending"][1]["outside"] is True  # random only records it


@pytest.mark.django_db
def test_evolution_learns_from_the_enqueued_cell(make_search, user, sent):
    search = make_search(strategy="evolution", budget=6, parallelism=1,
                         strategy_options={"population_size": 4, "sample_size": 2})
    cell = hand_cell()
    search_enqueue(user=user, search=search, genotype=cell)
    search_advance(search_id=search.pk)
    trial = search.trials.get(index=0)
    assert trial.cell_hash == hash_of(cell)
    state = strategy_state(search)
    assert state["pending"][0]["cell_hash"] == hash_of(cell) and "outside" not in state["pending"][0]
    finish(trial, reward=0.9)
    search_advance(search_id=search.pk)
    population = strategy_state(search)["algorithm"]["population"]
    assert [(m["cell_hash"], m["reward"]) for m in population] == [(hash_of(cell), 0.9)]


@pytest.mark.django_db
def test_a_paused_search_keeps_the_cell_for_its_resume(make_search, user, sent):
    from webapp.searches.services import search_pause, search_resume

    search = make_search(budget=6, parallelism=1)
    search_advance(search_id=search.pk)
    search_pause(search=search)
    cell = hand_cell()
    search_enqueue(user=user, search=search, genotype=cell)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    assert search.enqueued_cells == [] and search.trials.count() == 1  # handed over, not issued
    finish(search.trials.get(index=0))
    search_resume(search=search)
    search_advance(search_id=search.pk)
    assert search.trials.get(index=1).cell_hash == hash_of(cell)


# -- the API ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_enqueue_202_and_400s_name_the_field(api, make_search, team, other_user, sent):
    search = make_search(budget=10, parallelism=1)
    url = f"/api/searches/{search.pk}/enqueue/"
    cell = hand_cell()
    response = api.post(url, {"genotype": cell}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"cell_hash": hash_of(cell), "enqueued": 1}
    from searchcore.spaces.nasnet.genotype import Genotype

    add_cell = hand_cell(add_only=True)
    response = api.post(url, {"darts": Genotype.from_dict(add_cell).to_darts()}, format="json")
    assert response.status_code == 202 and response.json()["enqueued"] == 2

    assert list(api.post(url, {}, format="json").json()) == ["genotype"]
    response = api.post(url, {"genotype": cell, "darts": "x"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["genotype"]
    response = api.post(url, {"genotype": {"format": "cellsearch.nasnet/1"}}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["genotype"]
    response = api.post(url, {"darts": "Genotype(oops"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["darts"]
    response = api.post(url, {"cell_hash": "abc"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["cell_hash"]

    viewer = APIClient()
    viewer.force_login(join_team(team, "vera", "viewer"))
    assert viewer.post(url, {"genotype": cell}, format="json").status_code == 403
    stranger = APIClient()
    stranger.force_login(other_user)
    assert stranger.post(url, {"genotype": cell}, format="json").status_code == 404
    search.refresh_from_db()
    assert len(search.enqueued_cells) == 2


# -- the search page -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_form_errors_and_success(client, user, make_search, team, sent):
    search = make_search(budget=10, parallelism=1)
    client.force_login(user)
    page = client.get(f"/searches/{search.pk}/").content.decode()
    assert 'id="enqueue-form"' in page and "Genotype JSON or DARTS string" in page

    response = client.post(f"/searches/{search.pk}/enqueue/", {"genotype": ""})
    assert response.status_code == 400 and 'id="errors-genotype"' in response.content.decode()
    bad = hand_cell()
    bad["normal"] = bad["normal"][:2]
    response = client.post(f"/searches/{search.pk}/enqueue/", {"genotype": json.dumps(bad)})
    html = response.content.decode()
    assert response.status_code == 400 and "normal cell: has 2 blocks, this space has 5" in html

    cell = hand_cell()
    response = client.post(f"/searches/{search.pk}/enqueue/", {"genotype": json.dumps(cell)}, follow=True)
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == f"/searches/{search.pk}/"
    assert f"Cell {hash_of(cell)[:8]} enqueued" in html and f"alice: cell {hash_of(cell)[:8]} enqueued" in html

    client.force_login(join_team(team, "vic", "viewer"))
    assert 'id="enqueue-form"' not in client.get(f"/searches/{search.pk}/").content.decode()
    response = client.post(f"/searches/{search.pk}/enqueue/", {"genotype": json.dumps(cell)}, follow=True)
    assert "searches.steer needs the member role or above" in response.content.decode()
    search.refresh_from_db()
    assert len(search.enqueued_cells) == 1


# -- against a real worker -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_an_enqueued_cell_is_trained_and_a_fork_grows_from_it_on_a_real_worker(
        celery_worker_process, user, tiny_proxy, client):
    """The cell enqueued from the search page trains; a fork from its trial (through the API)
    copies its result, and evolution's first child in the fork, trained on the worker too, is
    one mutation of it."""
    with transaction.atomic():
        search = search_create(user=user, space="nasnet", strategy="evolution", dataset="digits", budget=3,
                               parallelism=1, seed=5, proxy={**tiny_proxy, "epochs": 1},
                               strategy_options={"population_size": 2, "sample_size": 2})
    cell = hand_cell()
    client.force_login(user)
    assert client.post(f"/searches/{search.pk}/enqueue/", {"genotype": json.dumps(cell)}).status_code == 302
    log = celery_worker_process.log

    def ended():
        search.refresh_from_db()
        return search.status in Search.ENDED

    wait_until(ended, 240, "the search to end", logs=log)
    assert search.status == Search.Status.FINISHED, search.error
    hashes = list(search.trials.order_by("index").values_list("cell_hash", flat=True))
    assert hash_of(cell) in hashes[:2] and search.enqueued_cells == []
    trial = search.trials.get(cell_hash=hash_of(cell), reused_from__isnull=True)
    assert trial.status == Trial.Status.FINISHED and trial.reward is not None

    api = APIClient()
    api.force_login(user)
    response = api.post(f"/api/searches/{search.pk}/fork/", {
        "trials": [trial.index], "budget": 2, "parallelism": 1,
        "strategy_options": {"population_size": 1, "sample_size": 1, "identity_probability": 0.0}}, format="json")
    assert response.status_code == 201, response.content
    fork = Search.objects.get(pk=response.json()["id"])
    wait_until(lambda: Search.objects.get(pk=fork.pk).status in Search.ENDED, 240, "the fork to end", logs=log)
    fork.refresh_from_db()
    assert fork.status == Search.Status.FINISHED, fork.error
    copied, child = fork.trials.order_by("index")
    assert copied.reused_from == trial and copied.reward == trial.reward
    assert child.status == Trial.Status.FINISHED and child.reused_from is None and child.epochs
    space = create_space("nasnet")
    before, after = (space.encode(space.genotype_from_dict(data)) for data in (cell, child.genotype))
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
