"""The browser pages, through Django's test client: login, team scoping, rendering with data,
the new-search form and its errors, sorting, paging, live partials and the comparison."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from django.utils import timezone

from webapp.cells.models import CellResult
from webapp.searches.models import Search
from webapp.teams.selectors import team_default_for_user
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db

VALID_FORM = {
    "name": "page demo", "space": "nasnet", "strategy": "random", "dataset": "digits", "budget": "3",
    "parallelism": "1", "epochs": "1", "cells": "1", "filters": "48", "batch_size": "64", "seed": "0",
    "strategy_options": "", "space_options": "",
}


# -- helpers ------------------------------------------------------------------------------------


def make_search(owner, **fields) -> Search:
    values = {"team": team_default_for_user(user=owner), "owner": owner, "budget": 10, "proxy": {"epochs": 1},
              "proxy_key": "proxy-1", "strategy": "random", "status": Search.Status.RUNNING}
    values.update(fields)
    return Search.objects.create(**values)


def login(client, user):
    client.force_login(user)
    return client


def trial_indices(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="trial-row" data-index="(\d+)"', html)]


# -- login --------------------------------------------------------------------------------------


def _page_urls(search, trial) -> list[str]:
    return ["/", "/searches/new/", f"/searches/{search.pk}/", f"/searches/{search.pk}/live/",
            f"/searches/{search.pk}/chart.json", f"/searches/compare/?searches={search.pk}",
            f"/trials/{trial.pk}/", f"/trials/{trial.pk}/live/", "/cells/"]


def test_every_page_needs_a_login(client, user, make_trial):
    search = make_search(user)
    trial = make_trial(search, 0)
    for url in _page_urls(search, trial):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url
    for action in ("pause", "resume", "cancel"):
        response = client.post(f"/searches/{search.pk}/{action}/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert Search.objects.get().status == Search.Status.RUNNING


def test_login_page_logs_in_and_lands_on_the_searches(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content and b'name="password"' in page.content
    assert b"cellsearch.css" in page.content

    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200
    assert b"alert-error" in wrong.content

    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert b"Searches" in response.content and b"alice" in response.content


def test_logout_is_a_post(client, user):
    login(client, user)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


# -- team scoping ---------------------------------------------------------------------------------


def test_another_teams_objects_are_404(client, user, other_user, make_trial):
    search = make_search(other_user, name="bobs secret")
    trial = make_trial(search, 0)
    login(client, user)
    for url in _page_urls(search, trial):
        if "compare" in url or url in ("/", "/searches/new/", "/cells/"):
            continue
        assert client.get(url).status_code == 404, url
    for action in ("pause", "resume", "cancel"):
        assert client.post(f"/searches/{search.pk}/{action}/").status_code == 404
    assert Search.objects.get().status == Search.Status.RUNNING
    assert b"bobs secret" not in client.get("/").content
    compare = client.get(f"/searches/compare/?searches={search.pk}")
    assert b"bobs secret" not in compare.content
    assert f"No search of yours has id {search.pk}".encode() in compare.content


def test_unknown_ids_are_404(client, user):
    login(client, user)
    for url in ("/searches/999/", "/searches/999/live/", "/searches/999/chart.json", "/trials/999/"):
        assert client.get(url).status_code == 404


# -- searches list --------------------------------------------------------------------------------


def test_search_list_shows_the_teams_searches(client, user, make_trial):
    search = make_search(user, name="digits ppo", strategy="ppo", budget=4)
    make_trial(search, 0, reward=0.8125)
    make_trial(search, 1, status=Trial.Status.RUNNING)
    login(client, user)
    page = client.get("/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "digits ppo" in html and ">ppo<" in html and "nasnet" in html and "digits" in html
    assert "badge-running" in html
    assert "1 / 4" in html and "1 running" in html
    assert "81.25%" in html
    assert 'href="/searches/new/"' in html and 'href="/searches/compare/"' in html


def test_search_list_paginates(client, user):
    for i in range(30):
        make_search(user, name=f"search-{i:02d}")
    login(client, user)
    first = client.get("/").content.decode()
    second = client.get("/?page=2").content.decode()
    assert "search-29" in first and "search-05" in first and "search-04" not in first
    assert "search-04" in second and "search-00" in second and "search-29" not in second
    assert "Page 2 of 2" in second


# -- new search form ------------------------------------------------------------------------------


def test_new_search_form_renders_registry_choices(client, user):
    login(client, user)
    html = client.get("/searches/new/").content.decode()
    from searchcore.spaces import SPACES
    from searchcore.strategies import STRATEGIES

    for name in SPACES.names() + STRATEGIES.names():
        assert f'value="{name}"' in html
    assert 'value="digits" selected' in html
    for field in ("budget", "parallelism", "epochs", "cells", "filters", "base_filters", "batch_size", "seed",
                  "keep_checkpoints", "strategy_options"):
        assert f'name="{field}"' in html


def test_post_creates_a_search_and_queues_its_first_step(client, user, queued_steps,
                                                         django_capture_on_commit_callbacks):
    login(client, user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/searches/new/", {**VALID_FORM, "keep_checkpoints": "on",
                                                  "strategy_options": '{"max_attempts": 50}'})
    search = Search.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/searches/{search.pk}/"
    assert (search.name, search.strategy, search.dataset, search.budget) == ("page demo", "random", "digits", 3)
    assert search.owner == user and search.keep_checkpoints
    assert search.proxy["epochs"] == 1 and search.proxy["cells"] == 1 and search.proxy["filters"] == 48
    assert search.strategy_options == {"max_attempts": 50}
    assert queued_steps == [(search.pk,)]
    detail = client.get(response["Location"])
    assert b"page demo" in detail.content and b"launched" in detail.content


def test_the_form_takes_base_filters_instead_of_f(client, user, queued_steps):
    login(client, user)
    html = client.get("/searches/new/").content.decode()
    assert "fixes every cell&#x27;s base filters at F / 24" in html  # the help says what the proxy fixes
    response = client.post("/searches/new/", {**VALID_FORM, "filters": "", "base_filters": "3"})
    assert response.status_code == 302
    proxy = Search.objects.get().proxy
    assert proxy["base_filters"] == 3 and "filters" not in proxy


def _errors_of(html: str, field: str) -> str:
    match = re.search(rf'<ul class="errorlist" id="errors-{field}">(.*?)</ul>', html, re.DOTALL)
    return match.group(1) if match else ""


@pytest.mark.parametrize(("changes", "field", "text"), [
    ({"budget": "0"}, "budget", "must be a whole number from 1 to 1,000,000, got 0"),
    ({"budget": "many"}, "budget", "whole number"),
    ({"epochs": "0"}, "epochs", "from 1 to 10,000, got 0"),  # ProxyConfig's bounds, in the service's words
    ({"filters": "50"}, "filters", "multiple of 24"),
    ({"filters": "", "base_filters": "1"}, "base_filters", "from 2 to 168, got 1"),
    ({"base_filters": "2"}, "base_filters", "both set"),
    ({"filters": "", "base_filters": "many"}, "base_filters", "whole number"),
    ({"batch_size": "1"}, "batch_size", "from 2 to 65,536, got 1"),
    ({"parallelism": "5"}, "parallelism", "must not exceed the budget"),
    ({"strategy_options": "{not json"}, "strategy_options", "Not valid JSON"),
    ({"strategy_options": "[1, 2]"}, "strategy_options", "JSON object"),
    ({"strategy_options": '{"no_such_option": 1}'}, "strategy_options", "no_such_option"),
    ({"strategy": "simulated-annealing"}, "strategy", "not one of the available choices"),
])
def test_form_errors_show_next_to_their_field(client, user, queued_steps, changes, field, text):
    login(client, user)
    response = client.post("/searches/new/", {**VALID_FORM, **changes})
    html = response.content.decode()
    assert response.status_code == 200
    assert text in _errors_of(html, field), html
    assert 'class="field has-error' in html
    assert not Search.objects.exists()
    assert queued_steps == []
    assert 'value="page demo"' in html  # what the user typed is kept


# -- search detail --------------------------------------------------------------------------------


def test_search_detail_renders_progress_workers_trials_and_chart(client, user, make_trial):
    search = make_search(user, name="watch me", budget=4)
    make_trial(search, 0, reward=0.75, params=123456, mult_adds=7654321)
    make_trial(search, 1, reward=0.9)
    make_trial(search, 2, status=Trial.Status.RUNNING, worker="gpu-box-7", heartbeat_at=timezone.now(),
               epochs=[{"epoch": 1}])
    make_trial(search, 3, status=Trial.Status.FAILED, error="diverged")
    login(client, user)
    html = client.get(f"/searches/{search.pk}/").content.decode()
    assert "watch me" in html
    assert "3 / 4" in html and 'aria-valuenow="75"' in html
    assert "90.00%" in html  # best reward
    assert "gpu-box-7" in html and "trial 2" in html
    assert trial_indices(html) == [3, 2, 1, 0]  # newest first
    assert "123k" in html and "7.65M" in html
    assert 'id="reward-chart"' in html and "plotly.min.js" in html
    assert f'hx-get="/searches/{search.pk}/live/"' in html and 'hx-trigger="every 2s"' in html
    for action in ("pause", "cancel"):
        assert f'action="/searches/{search.pk}/{action}/"' in html
    assert f'action="/searches/{search.pk}/resume/"' not in html


def test_chart_data_has_rewards_and_best_so_far(client, user, make_trial):
    search = make_search(user)
    make_trial(search, 0, reward=0.5)
    make_trial(search, 1, status=Trial.Status.FAILED)
    make_trial(search, 2, reward=0.25)
    make_trial(search, 3, reward=0.75)
    make_trial(search, 4, status=Trial.Status.RUNNING)
    login(client, user)
    data = client.get(f"/searches/{search.pk}/chart.json").json()
    assert data["index"] == [0, 2, 3]
    assert data["reward"] == [0.5, 0.25, 0.75]
    assert data["best"] == [0.5, 0.5, 0.75]
    assert data["failed"] == [1]
    assert data["done"] == 4


def test_trials_table_sorts_and_paginates(client, user, make_trial):
    search = make_search(user, budget=60)
    rewards = [(i * 37 % 60) / 60 for i in range(60)]
    for i, reward in enumerate(rewards):
        make_trial(search, i, reward=reward, params=1000 + (i * 7 % 60))
    login(client, user)

    default = client.get(f"/searches/{search.pk}/").content.decode()
    assert trial_indices(default) == list(range(59, 34, -1))
    assert "Page 1 of 3" in default

    by_index = client.get(f"/searches/{search.pk}/?sort=index&page=3").content.decode()
    assert trial_indices(by_index) == list(range(50, 60))

    by_reward = client.get(f"/searches/{search.pk}/?sort=-reward").content.decode()
    expected = sorted(range(60), key=lambda i: (-rewards[i], i))[:25]
    assert trial_indices(by_reward) == expected
    assert "Reward ▼" in by_reward
    assert "sort=reward" in by_reward  # clicking the sorted column again flips it

    by_params = client.get(f"/searches/{search.pk}/?sort=params&page=2").content.decode()
    assert trial_indices(by_params) == sorted(range(60), key=lambda i: (1000 + (i * 7 % 60), i))[25:50]
    assert "sort=params" in by_params and "page=3" in by_params  # paging links keep the sort

    junk = client.get(f"/searches/{search.pk}/?sort=drop+table&page=banana")
    assert junk.status_code == 200
    assert trial_indices(junk.content.decode()) == list(range(59, 34, -1))


def test_live_partial_polls_until_the_search_ends(client, user, make_trial):
    search = make_search(user, budget=2)
    make_trial(search, 0)
    login(client, user)
    live = client.get(f"/searches/{search.pk}/live/?sort=index", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="search-poller"' in live and f'hx-get="/searches/{search.pk}/live/?sort=index"' in live
    assert 'id="search-status" hx-swap-oob="true"' in live and 'id="search-trials" hx-swap-oob="true"' in live
    assert trial_indices(live) == [0]
    assert "<html" not in live

    make_trial(search, 1)
    Search.objects.filter(pk=search.pk).update(status=Search.Status.FINISHED)
    ended = client.get(f"/searches/{search.pk}/live/", HTTP_HX_REQUEST="true").content.decode()
    assert trial_indices(ended) == [1, 0]
    assert "hx-get" not in ended and "hx-trigger" not in ended
    page = client.get(f"/searches/{search.pk}/").content.decode()
    assert 'hx-get="/searches/' not in page
    assert f'action="/searches/{search.pk}/cancel/"' not in page


def test_pause_resume_cancel_buttons(client, user, queued_steps, django_capture_on_commit_callbacks):
    search = make_search(user)
    login(client, user)
    response = client.post(f"/searches/{search.pk}/pause/", follow=True)
    assert Search.objects.get().status == Search.Status.PAUSED
    assert b"Search paused." in response.content
    assert f'action="/searches/{search.pk}/resume/"'.encode() in response.content

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/searches/{search.pk}/resume/")
    assert Search.objects.get().status in Search.ACTIVE
    assert queued_steps == [(search.pk,)]

    client.post(f"/searches/{search.pk}/cancel/")
    assert Search.objects.get().status == Search.Status.CANCELLED
    again = client.post(f"/searches/{search.pk}/cancel/", follow=True)
    assert b"Could not cancel this search" in again.content
    assert client.get(f"/searches/{search.pk}/pause/").status_code == 405


def test_detail_page_stays_small_with_many_trials(client, user, django_assert_max_num_queries, make_cell):
    search = make_search(user, budget=3000)
    cell = make_cell()
    Trial.objects.bulk_create(
        Trial(search=search, index=i, cell=cell, genotype=cell.genotype, cell_hash=cell.cell_hash,
              status=Trial.Status.FINISHED, reward=(i % 97) / 97, val_acc=0.5)
        for i in range(3000))
    login(client, user)
    with django_assert_max_num_queries(15):
        response = client.get(f"/searches/{search.pk}/")
    assert len(trial_indices(response.content.decode())) == 25
    assert len(response.content) < 100_000
    assert len(client.get(f"/searches/{search.pk}/chart.json").json()["index"]) == 3000


# -- trial detail ---------------------------------------------------------------------------------


def test_trial_detail_shows_curves_diagram_numbers_and_genotype(client, user, make_trial):
    search = make_search(user, proxy={"epochs": 2})
    epochs = [{"epoch": 1, "train_loss": 2.1, "train_acc": 0.3, "val_loss": 1.9, "val_acc": 0.4, "lr": 0.05,
               "seconds": 1.5, "images_per_second": 900.0},
              {"epoch": 2, "train_loss": 1.2, "train_acc": 0.6, "val_loss": 1.1, "val_acc": 0.65, "lr": 0.01,
               "seconds": 1.4, "images_per_second": 950.0}]
    now = timezone.now()
    trial = make_trial(search, 0, reward=0.65, params=54321, mult_adds=1234567, worker="celery@box",
                       epochs=epochs, started_at=now - timezone.timedelta(seconds=75), finished_at=now)
    login(client, user)
    html = client.get(f"/trials/{trial.pk}/").content.decode()
    assert "Trial 0" in html and "65.00%" in html and "54.3k" in html and "1.23M" in html
    assert "celery@box" in html and "1 min 15 s" in html and "2 / 2" in html
    # The proxy's default F = 96 fixes base filters 4; this normal cell concatenates 1 state.
    assert re.search(r'id="trial-network">F = 16, base filters 4 ', html)
    assert re.search(r'<div class="diagram" id="cell-diagram"><svg\b', html)  # inline, no XML prolog
    assert "Normal Cell" in html and "Reduction Cell" in html and "<?xml" not in html
    curves = re.search(r'<script id="epochs-data" type="application/json">(.*?)</script>', html, re.S)
    assert json.loads(curves.group(1)) == epochs  # the curves' data (jsonb keeps no key order: compare values)
    assert 'id="loss-chart"' in html and 'id="acc-chart"' in html
    assert "Genotype(normal=[" in html  # the DARTS form
    assert ('{&quot;inputs&quot;: [0, 1], &quot;ops&quot;: [&quot;sep_conv_3x3&quot;, &quot;identity&quot;], '
            '&quot;combine&quot;: &quot;add&quot;}') in html  # one line per block
    assert f"/api/cells/{trial.cell_id}/genotype.json" in html
    assert f"/api/cells/{trial.cell_id}/genotype.txt" in html
    assert f"/api/trials/{trial.pk}/checkpoint" not in html  # it kept none
    assert "hx-get" not in html  # finished: nothing to poll


def test_trial_detail_of_a_failed_trial_shows_its_error(client, user, make_cell, make_trial, concat_genotype):
    search = make_search(user)
    trial = make_trial(search, 0, cell=make_cell(concat_genotype), status=Trial.Status.FAILED,
                       error="TrainingDivergedError: loss is nan at epoch 1")
    login(client, user)
    html = client.get(f"/trials/{trial.pk}/").content.decode()
    assert "This trial failed." in html and "loss is nan at epoch 1" in html
    assert "/genotype.txt" not in html  # a concat cell has no DARTS form
    assert "No epoch has finished yet." in html


def test_a_trial_trained_again_says_why_its_last_attempt_ended(client, user, make_trial):
    search = make_search(user)
    error = ("training process crashed: signal 6 (SIGABRT): double free or corruption (!prev) "
             "(attempt 1 of 3; queued again)")
    trial = make_trial(search, 0, status=Trial.Status.RUNNING, attempts=2, worker="gpu0:12", error=error)
    login(client, user)
    html = client.get(f"/trials/{trial.pk}/").content.decode()
    assert "Its last attempt ended early; it trains again." in html and "signal 6 (SIGABRT)" in html
    assert "This trial failed." not in html and "(attempt 2)" in html


def test_trial_page_polls_while_training(client, user, make_trial):
    search = make_search(user)
    trial = make_trial(search, 0, status=Trial.Status.RUNNING, worker="w1",
                       epochs=[{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5}])
    login(client, user)
    html = client.get(f"/trials/{trial.pk}/").content.decode()
    assert f'hx-get="/trials/{trial.pk}/live/"' in html
    live = client.get(f"/trials/{trial.pk}/live/").content.decode()
    assert 'id="trial-summary" hx-swap-oob="true"' in live and 'id="epochs-data"' in live
    assert "hx-get" in live and "<html" not in live


def test_trial_checkpoint_link_when_kept(client, user, settings, tmp_path, make_trial):
    from django.core.files.base import ContentFile

    settings.MEDIA_ROOT = str(tmp_path)
    search = make_search(user)
    trial = make_trial(search, 0)
    trial.checkpoint.save("t0.pt", ContentFile(b"weights"))
    login(client, user)
    assert f"/api/trials/{trial.pk}/checkpoint".encode() in client.get(f"/trials/{trial.pk}/").content


# -- compare --------------------------------------------------------------------------------------


@pytest.fixture
def finished_search(make_trial):
    """`finished_search(user, strategy, seed, rewards, **fields)`: a finished search with these rewards."""

    def make(user, strategy, seed, rewards, **fields):
        search = make_search(user, name=f"{strategy}-{seed}", strategy=strategy, seed=seed,
                             status=Search.Status.FINISHED, budget=len(rewards), **fields)
        for i, reward in enumerate(rewards):
            make_trial(search, i, reward=reward, cell_hash=f"{strategy}-{seed}-{i}")
        return search

    return make


def test_compare_page_draws_figure_6(client, user, finished_search):
    a = finished_search(user, "ppo", 0, [0.1, 0.5, 0.3, 0.9])
    b = finished_search(user, "ppo", 1, [0.2, 0.4, 0.6, 0.8])
    c = finished_search(user, "random", 0, [0.3, 0.2, 0.1, 0.4])
    login(client, user)
    page = client.get(f"/searches/compare/?searches={a.pk},{b.pk}&searches={c.pk}&top=1,2")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="compare-errors"' not in html
    data = json.loads(re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', html,
                                re.DOTALL).group(1))
    assert data["top"] == [1, 2]
    ppo = next(g for g in data["strategies"] if g["strategy"] == "ppo")
    assert len(ppo["runs"]) == 2
    assert ppo["mean"]["1"] == pytest.approx([0.15, 0.45, 0.55, 0.85])
    assert ppo["min"]["1"] == pytest.approx([0.1, 0.4, 0.5, 0.8])
    assert ppo["mean"]["2"][0] is None
    assert 'id="compare-chart"' in html and "plotly.min.js" in html
    for s in (a, b, c):
        assert f'value="{s.pk}" id="pick-{s.pk}" checked' in html


def test_compare_refuses_different_datasets(client, user, finished_search):
    a = finished_search(user, "ppo", 0, [0.1, 0.5])
    b = finished_search(user, "random", 0, [0.3, 0.2], dataset="cifar10")
    login(client, user)
    html = client.get(f"/searches/compare/?searches={a.pk},{b.pk}").content.decode()
    assert "can only be compared on the same space and dataset" in html
    assert f"#{a.pk} is nasnet on digits" in html and f"#{b.pk} is nasnet on cifar10" in html
    assert 'id="compare-chart"' not in html


def test_compare_needs_two_searches_and_good_top_values(client, user, finished_search):
    a = finished_search(user, "ppo", 0, [0.1, 0.5])
    b = finished_search(user, "ppo", 1, [0.1, 0.5])
    login(client, user)
    empty = client.get("/searches/compare/").content.decode()
    assert 'id="compare-errors"' not in empty and f'id="pick-{a.pk}"' in empty
    picked = client.get(f"/searches/compare/?pick={b.pk}").content.decode()
    assert 'id="compare-errors"' not in picked
    assert f'id="pick-{b.pk}" checked' in picked and f'id="pick-{a.pk}" checked' not in picked
    one = client.get(f"/searches/compare/?searches={a.pk}").content.decode()
    assert "Pick at least two searches" in one
    bad_top = client.get(f"/searches/compare/?searches={a.pk},{b.pk}&top=0,x").content.decode()
    assert "top &#x27;0,x&#x27; must be comma-separated integers from 1 to 1000" in bad_top
    assert 'id="compare-chart"' not in bad_top
    bad_ids = client.get(f"/searches/compare/?searches={a.pk},x").content.decode()
    assert "searches &#x27;" in bad_ids and "must be comma-separated integers" in bad_ids


# -- best cells -----------------------------------------------------------------------------------


def test_best_cells_ranked_filtered_and_paginated(client, user, other_user, make_cell, make_trial, add_genotype,
                                                  concat_genotype):
    search = make_search(user)
    cifar = make_search(user, dataset="cifar10", name="on cifar")
    genotypes = []
    for i in range(27):
        ops = ["sep_conv_3x3", "identity", "avg_pool_3x3", "max_pool_3x3", "sep_conv_5x5", "conv_3x3"]
        cell_blocks = [{"inputs": [0, 1], "ops": [ops[i % 6], ops[(i // 6) % 6]], "combine": "add"},
                       {"inputs": [i % 2, 2], "ops": [ops[(i // 2) % 6], "identity"], "combine": "add"}]
        genotypes.append({"format": "cellsearch.nasnet/1", "normal": cell_blocks, "reduction": add_genotype["reduction"]})
    for i, genotype in enumerate(genotypes):
        trial = make_trial(search, i, cell=make_cell(genotype), reward=i / 100)
        CellResult.objects.create(cell=trial.cell, team=search.team, dataset="digits", proxy_key="p",
                                  best_trial=trial, best_reward=i / 100, params=1000 + i, mult_adds=5000)
    cifar_trial = make_trial(cifar, 0, cell=make_cell(concat_genotype), reward=0.99)
    CellResult.objects.create(cell=cifar_trial.cell, team=cifar.team, dataset="cifar10", proxy_key="q",
                              best_trial=cifar_trial, best_reward=0.99)
    theirs = make_search(other_user, name="bob search")
    their_trial = make_trial(theirs, 0, cell=make_cell(genotypes[0]), reward=1.0)
    CellResult.objects.create(cell=their_trial.cell, team=theirs.team, dataset="digits", proxy_key="p",
                              best_trial=their_trial, best_reward=1.0)

    login(client, user)
    html = client.get("/cells/").content.decode()
    assert "bob search" not in html and "100.00%" not in html
    rewards = re.findall(r'<td class="num strong">([\d.]+)%</td>', html)
    assert rewards[:3] == ["99.00", "26.00", "25.00"] and len(rewards) == 25
    assert f"/api/cells/{cifar_trial.cell_id}/diagram.svg" in html
    assert f'href="/trials/{cifar_trial.pk}/"' in html
    assert f"/api/cells/{cifar_trial.cell_id}/genotype.json" in html
    assert f"/api/cells/{cifar_trial.cell_id}/genotype.txt" not in html  # concat: no DARTS form
    assert '<option value="cifar10">cifar10</option>' in html

    digits = client.get("/cells/?dataset=digits&page=2").content.decode()
    assert re.findall(r'<td class="num strong">([\d.]+)%</td>', digits) == ["1.00", "0.00"]
    assert "on cifar" not in digits and '<option value="digits" selected>' in digits


# -- the web process stays torch-free -----------------------------------------------------------


def test_pages_import_no_torch():
    """Views, forms, template tags and the diagram code load without torch (a fresh process)."""
    code = (
        "import sys, django; django.setup();"
        "import webapp.urls, webapp.searches.views, webapp.searches.forms, webapp.trials.views, webapp.cells.views;"
        "import webapp.searches.templatetags.cellsearch;"
        "from django.template.loader import get_template;"
        "[get_template(n) for n in ('searches/list.html', 'searches/new.html', 'searches/detail.html',"
        " 'searches/compare.html', 'trials/detail.html', 'cells/list.html', 'registration/login.html')];"
        "webapp.searches.forms.SearchCreateForm();"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_teammates_share_searches_trials_and_cells(client, user, make_trial):
    from webapp.teams.services import user_create

    teammate = user_create(username="carol", password="carol-password-1", team_name="team-a")
    search = make_search(user, name="shared work")
    trial = make_trial(search, 0)
    CellResult.objects.create(cell=trial.cell, team=search.team, dataset="digits", proxy_key="p", best_trial=trial,
                              best_reward=0.5)
    login(client, teammate)
    assert b"shared work" in client.get("/").content
    assert client.get(f"/searches/{search.pk}/").status_code == 200
    assert client.get(f"/trials/{trial.pk}/").status_code == 200
    assert f'href="/trials/{trial.pk}/"'.encode() in client.get("/cells/").content


def test_the_favicon_needs_no_login(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
