"""The REST API: auth, team scoping, create/validate, steering, trials paging, cells, compare."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from searchcore.errors import ConfigError, UnknownNameError
from searchcore.spaces import parse_genotype
from webapp.cells.models import CellResult
from webapp.searches.models import Search
from webapp.teams.selectors import team_default_for_user
from webapp.teams.services import user_create
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db

VALID_CREATE = {
    "name": "api demo", "space": "nasnet", "strategy": "random", "dataset": "digits", "budget": 4,
    "parallelism": 2, "seed": 3, "proxy": {"epochs": 1, "cells": 1, "filters": 48, "batch_size": 32},
}


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def alice():
    return user_create(username="alice", password="pw-alice-123", team_name="alpha")


@pytest.fixture
def bob():
    return user_create(username="bob", password="pw-bob-123", team_name="beta")


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_login(alice)
    return client


def make_search(owner, **fields) -> Search:
    values = {"team": team_default_for_user(user=owner), "owner": owner, "budget": 10, "proxy": {"epochs": 1},
              "proxy_key": "proxy-1", "strategy": "random"}
    values.update(fields)
    return Search.objects.create(**values)


def make_result(trial, *, reward, dataset="digits", proxy_key="proxy-1") -> CellResult:
    return CellResult.objects.create(cell=trial.cell, team=trial.search.team, dataset=dataset, proxy_key=proxy_key,
                                     best_trial=trial, best_reward=reward, params=1000, mult_adds=2000)


# -- auth -------------------------------------------------------------------------------------


ANONYMOUS_REQUESTS = [
    ("get", "/api/searches/"), ("post", "/api/searches/"), ("get", "/api/searches/1/"),
    ("post", "/api/searches/1/pause/"), ("post", "/api/searches/1/resume/"), ("post", "/api/searches/1/cancel/"),
    ("get", "/api/searches/1/trials/"), ("get", "/api/trials/1/"), ("get", "/api/trials/1/checkpoint"),
    ("get", "/api/cells/"), ("get", "/api/cells/1/diagram.svg"), ("get", "/api/cells/1/genotype.json"),
    ("get", "/api/cells/1/genotype.txt"), ("get", "/api/compare/?searches=1"), ("get", "/api/schema/"),
]


@pytest.mark.parametrize(("method", "url"), ANONYMOUS_REQUESTS)
def test_anonymous_requests_are_refused(method, url, alice, make_trial):
    search = make_search(alice)
    make_trial(search, 0)
    response = getattr(APIClient(), method)(url.replace("/1/", f"/{search.pk}/"))
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert Search.objects.get().status == Search.Status.QUEUED


def test_token_auth(alice):
    make_search(alice, name="mine")
    token = Token.objects.create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get("/api/searches/")
    assert response.status_code == 200
    assert [s["name"] for s in response.json()["results"]] == ["mine"]

    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/searches/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_drf_create_token_command(alice):
    call_command("drf_create_token", "alice")
    assert Token.objects.filter(user=alice).exists()


# -- create -----------------------------------------------------------------------------------


def test_create_search(api, alice, queued_steps, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/searches/", VALID_CREATE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    search = Search.objects.get(pk=body["id"])
    assert search.team == team_default_for_user(user=alice) and search.owner == alice
    assert (search.name, search.strategy, search.budget, search.parallelism, search.seed) == ("api demo", "random",
                                                                                                 4, 2, 3)
    assert search.proxy["epochs"] == 1 and search.proxy["filters"] == 48 and search.dataset == "digits"
    assert body["status"] == "queued"
    assert body["proxy"] == search.proxy
    assert body["progress"]["budget"] == 4 and body["progress"]["done"] == 0
    assert body["owner"] == "alice" and body["team"] == "alpha"
    assert queued_steps == [(search.pk,)]


def test_create_search_defaults(api, queued_steps):
    response = api.post("/api/searches/", {"budget": 2}, format="json")
    assert response.status_code == 201, response.content
    search = Search.objects.get()
    assert (search.space, search.dataset, search.parallelism, search.keep_checkpoints) == ("nasnet", "digits", 1,
                                                                                            False)


@pytest.mark.parametrize(("change", "error_path"), [
    ({"strategy": "hill-climbing"}, ["strategy"]),
    ({"proxy": {"epochs": 0}}, ["proxy", "epochs"]),
    ({"parallelism": 9, "budget": 4}, ["parallelism"]),
    ({"budget": None}, ["budget"]),
    ({"budget": "many"}, ["budget"]),
    ({"proxy": {"no_such_setting": 1}}, ["proxy", "no_such_setting"]),
    ({"proxy": {"dataset": "digits"}}, ["proxy", "dataset"]),
    ({"proxy": {"data_root": "/etc"}}, ["proxy", "data_root"]),
    ({"proxy": {"batch_size": 1}}, ["proxy", "batch_size"]),
    ({"proxy": {"base_filters": 1}}, ["proxy", "base_filters"]),
    ({"proxy": {"base_filters": "wide"}}, ["proxy", "base_filters"]),
    ({"proxy": {"filters": 48, "base_filters": 2}}, ["proxy", "base_filters"]),
    ({"proxy": {"filters": 50}}, ["proxy", "filters"]),
    ({"space": "nowhere"}, ["space"]),
    ({"dataset": "imagenet-22k"}, ["dataset"]),
])
def test_create_search_validation(api, queued_steps, change, error_path):
    data = {**VALID_CREATE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    response = api.post("/api/searches/", data, format="json")
    assert response.status_code == 400, response.content
    node = response.json()
    for key in error_path:
        assert key in node, response.json()
        node = node[key]
    assert isinstance(node, list) and node and all(isinstance(m, str) and m for m in node)
    assert not Search.objects.exists()


def test_create_search_with_base_filters(api, queued_steps):
    proxy = {"epochs": 1, "cells": 1, "base_filters": 2, "batch_size": 32}
    response = api.post("/api/searches/", {**VALID_CREATE, "proxy": proxy}, format="json")
    assert response.status_code == 201, response.content
    search = Search.objects.get()
    assert search.proxy["base_filters"] == 2 and "filters" not in search.proxy
    body = api.post("/api/searches/", {**VALID_CREATE, "proxy": {"base_filters": 1}}, format="json").json()
    assert body["proxy"]["base_filters"] == ["proxy config: base_filters must be in 2..168 (every cell needs 2), got 1"]


def test_create_search_messages_name_the_fault(api, queued_steps):
    body = api.post("/api/searches/", {**VALID_CREATE, "strategy": "hill-climbing"}, format="json").json()
    assert "ppo" in body["strategy"][0]  # the known strategies are listed
    body = api.post("/api/searches/", {**VALID_CREATE, "parallelism": 9}, format="json").json()
    assert "budget" in body["parallelism"][0]
    body = api.post("/api/searches/", {k: v for k, v in VALID_CREATE.items() if k != "budget"}, format="json").json()
    assert body["budget"] == ["This field is required."]


@pytest.mark.parametrize(("error", "body"), [
    (ConfigError("epochs must be at least 1", field="proxy.epochs"), {"proxy": {"epochs": ["epochs must be at least 1"]}}),
    (UnknownNameError("no space 'x'; known: nasnet"), {"non_field_errors": ["no space 'x'; known: nasnet"]}),
])
def test_searchcore_errors_reaching_a_view_are_400s_on_their_field(api, monkeypatch, error, body):
    """The exception handler answers a searchcore error as it does a service's ValidationError."""
    from webapp.searches import services

    def refuse(**kwargs):
        raise error

    monkeypatch.setattr(services, "search_create", refuse)
    response = api.post("/api/searches/", VALID_CREATE, format="json")
    assert (response.status_code, response.json()) == (400, body)


# -- list, detail, team scoping -----------------------------------------------------------------


def test_list_shows_only_the_users_team(api, alice, bob, make_trial):
    mine = [make_search(alice, name=f"a{i}") for i in range(3)]
    make_search(bob, name="theirs")
    teammate = user_create(username="carol", password="pw-carol-123", team_name="alpha")
    make_search(teammate, name="teammate's")
    response = api.get("/api/searches/?limit=2")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert len(body["results"]) == 2 and body["next"]
    names = {s["name"] for s in body["results"]} | {s["name"] for s in api.get(body["next"]).json()["results"]}
    assert names == {"a0", "a1", "a2", "teammate's"}
    make_trial(mine[0], 0, reward=0.7)
    row = next(s for s in api.get("/api/searches/").json()["results"] if s["id"] == mine[0].pk)
    assert row["trials_done"] == 1 and row["best_reward"] == pytest.approx(0.7)


def test_detail_has_config_and_progress(api, alice, make_trial):
    search = make_search(alice, budget=4, status=Search.Status.RUNNING)
    make_trial(search, 0, reward=0.6)
    make_trial(search, 1, status=Trial.Status.FAILED, error="diverged")
    make_trial(search, 2, status=Trial.Status.RUNNING, worker="gpu-1", epochs=[{"epoch": 0}])
    body = api.get(f"/api/searches/{search.pk}/").json()
    assert body["status"] == "running" and body["budget"] == 4 and body["proxy"] == {"epochs": 1}
    assert body["progress"] == {"budget": 4, "done": 2, "failed": 1, "running": 1, "pending": 0, "percent": 50,
                                "best_reward": 0.6}
    assert body["workers"][0]["worker"] == "gpu-1" and body["workers"][0]["epochs_done"] == 1


def other_team_urls(search, trial, cell):
    return [
        ("get", f"/api/searches/{search.pk}/"),
        ("post", f"/api/searches/{search.pk}/pause/"),
        ("post", f"/api/searches/{search.pk}/resume/"),
        ("post", f"/api/searches/{search.pk}/cancel/"),
        ("get", f"/api/searches/{search.pk}/trials/"),
        ("get", f"/api/trials/{trial.pk}/"),
        ("get", f"/api/trials/{trial.pk}/checkpoint"),
        ("get", f"/api/cells/{cell.pk}/diagram.svg"),
        ("get", f"/api/cells/{cell.pk}/genotype.json"),
        ("get", f"/api/cells/{cell.pk}/genotype.txt"),
    ]


def test_other_teams_objects_are_404_everywhere(api, bob, settings, tmp_path, make_trial):
    settings.MEDIA_ROOT = str(tmp_path)
    search = make_search(bob, status=Search.Status.RUNNING)
    trial = make_trial(search, 0, reward=0.9)
    trial.checkpoint.save("theirs.pt", ContentFile(b"weights"))
    make_result(trial, reward=0.9)
    for method, url in other_team_urls(search, trial, trial.cell):
        response = getattr(api, method)(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json", url
    assert Search.objects.get().status == Search.Status.RUNNING
    assert api.get("/api/cells/").json()["results"] == []
    assert api.get("/api/searches/99999/").status_code == 404


# -- steering ------------------------------------------------------------------------------------


def test_pause_resume_cancel(api, alice, queued_steps, django_capture_on_commit_callbacks, make_trial):
    search = make_search(alice, status=Search.Status.RUNNING, started_at=timezone.now())
    make_trial(search, 0, status=Trial.Status.PENDING)
    url = f"/api/searches/{search.pk}"

    response = api.post(f"{url}/pause/")
    assert response.status_code == 200 and response.json()["status"] == "paused"
    response = api.post(f"{url}/pause/")
    assert response.status_code == 400 and "paused" in response.json()["status"][0]

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{url}/resume/")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert queued_steps == [(search.pk,)]
    assert api.post(f"{url}/resume/").status_code == 400

    response = api.post(f"{url}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert search.trials.get().status == Trial.Status.CANCELLED
    for action in ("pause", "resume", "cancel"):
        response = api.post(f"{url}/{action}/")
        assert response.status_code == 400 and response.json()["status"], action
    search.refresh_from_db()
    assert search.status == Search.Status.CANCELLED


# -- trials -----------------------------------------------------------------------------------


@pytest.fixture
def seven_trials(alice, make_trial):
    search = make_search(alice, status=Search.Status.RUNNING)
    statuses = ["finished", "failed", "finished", "running", "finished", "pending", "finished"]
    for index, trial_status in enumerate(statuses):
        make_trial(search, index, status=trial_status, reward=0.1 * index if trial_status == "finished" else None,
                   epochs=[{"epoch": e, "val_acc": 0.1} for e in range(index % 3)],
                   error="diverged" if trial_status == "failed" else "")
    return search


def test_trials_cursor_pagination(api, seven_trials):
    url = f"/api/searches/{seven_trials.pk}/trials/?limit=3"
    seen, pages = [], 0
    while url:
        response = api.get(url)
        assert response.status_code == 200
        body = response.json()
        seen += [t["index"] for t in body["results"]]
        url, pages = body["next"], pages + 1
    assert seen == list(range(7)) and pages == 3

    first = api.get(f"/api/searches/{seven_trials.pk}/trials/").json()["results"]
    trial = first[1]
    expected = {"id", "index", "status", "reward", "val_acc", "params", "mult_adds", "cell_hash", "cell", "worker",
                "started_at", "finished_at", "epochs_done", "error"}
    assert expected <= set(trial)
    assert trial["status"] == "failed" and trial["error"] == "diverged" and trial["epochs_done"] == 1
    assert first[2]["reward"] == pytest.approx(0.2) and first[2]["epochs_done"] == 2
    assert "genotype" not in trial


def test_trials_status_filter_and_after(api, seven_trials):
    url = f"/api/searches/{seven_trials.pk}/trials/"
    finished = api.get(f"{url}?status=finished").json()["results"]
    assert [t["index"] for t in finished] == [0, 2, 4, 6]
    assert [t["index"] for t in api.get(f"{url}?after=4").json()["results"]] == [5, 6]
    assert [t["index"] for t in api.get(f"{url}?after=1&status=finished&limit=1").json()["results"]] == [2]
    assert api.get(f"{url}?after=6").json()["results"] == []
    response = api.get(f"{url}?status=bogus")
    assert response.status_code == 400 and "status" in response.json()
    assert api.get(f"{url}?after=x").status_code == 400


@pytest.mark.parametrize(("known", "proxy", "network"), [
    ("nasnet-a", {"filters": 96}, {"filters": 96, "base_filters": 4, "concat_states": 6}),
    ("darts-v2", {"filters": 96}, {"filters": 64, "base_filters": 4, "concat_states": 4}),
    ("darts-v2", {"base_filters": 36}, {"filters": 576, "base_filters": 36, "concat_states": 4}),
])
def test_trial_detail_reports_f_and_base_filters_of_its_network(api, alice, make_cell, make_trial, known, proxy,
                                                                network):
    from searchcore.known import get_known

    trial = make_trial(make_search(alice, proxy=proxy), 0, cell=make_cell(get_known(known).to_dict()))
    assert api.get(f"/api/trials/{trial.pk}/").json()["network"] == network


def test_trial_detail_and_checkpoint(api, alice, settings, tmp_path, make_trial, add_genotype):
    settings.MEDIA_ROOT = str(tmp_path)
    search = make_search(alice)
    epochs = [{"epoch": 0, "val_acc": 0.4}, {"epoch": 1, "val_acc": 0.6}]
    trial = make_trial(search, 0, reward=0.6, epochs=epochs, params=1234)
    body = api.get(f"/api/trials/{trial.pk}/").json()
    assert body["search"] == search.pk and body["genotype"] == add_genotype and body["epochs"] == epochs
    assert body["params"] == 1234 and body["epochs_done"] == 2 and body["checkpoint_url"] is None
    # The default proxy's F = 96 fixes base filters 4; this normal cell concatenates 1 state: F = 4 × 1 × 4.
    assert body["network"] == {"filters": 16, "base_filters": 4, "concat_states": 1}
    assert api.get(f"/api/trials/{trial.pk}/checkpoint").status_code == 404

    trial.checkpoint.save("trial.pt", ContentFile(b"\x80weights"))
    body = api.get(f"/api/trials/{trial.pk}/").json()
    assert body["checkpoint_url"] == f"/api/trials/{trial.pk}/checkpoint"
    response = api.get(body["checkpoint_url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x80weights"
    assert response["Content-Disposition"].startswith("attachment;")
    assert f"search{search.pk}-trial0-" in response["Content-Disposition"]

    # a checkpoint file that went missing from storage is a 404, not a 500
    (tmp_path / trial.checkpoint.name).unlink()
    assert api.get(f"/api/trials/{trial.pk}/checkpoint").status_code == 404


# -- cells ---------------------------------------------------------------------------------------


@pytest.fixture
def cells(alice, bob, make_cell, make_trial, concat_genotype):
    search = make_search(alice)
    other = make_search(alice, dataset="cifar10", proxy_key="proxy-2")
    good = make_trial(search, 0, reward=0.9)
    concat_cell = make_cell(concat_genotype)
    worse = make_trial(search, 1, cell=concat_cell, reward=0.7)
    cifar = make_trial(other, 0, cell=concat_cell, reward=0.8)
    theirs = make_trial(make_search(bob), 0, cell=concat_cell, reward=0.99)
    results = [make_result(worse, reward=0.7), make_result(good, reward=0.9),
               make_result(cifar, reward=0.8, dataset="cifar10", proxy_key="proxy-2"), make_result(theirs, reward=0.99)]
    return {"add": good.cell, "concat": concat_cell, "results": results, "search": search}


def test_cells_ordered_by_reward_and_filtered(api, cells, add_genotype):
    rows = api.get("/api/cells/").json()["results"]
    assert [r["best_reward"] for r in rows] == [0.9, 0.8, 0.7]  # bob's 0.99 is not here
    assert rows[0]["cell"] == cells["add"].pk and rows[0]["cell_hash"] == cells["add"].cell_hash
    assert rows[0]["search"] == cells["search"].pk and rows[0]["genotype"] == add_genotype
    digits = api.get("/api/cells/?dataset=digits").json()["results"]
    assert [r["best_reward"] for r in digits] == [0.9, 0.7]
    assert api.get("/api/cells/?space=macro").json()["results"] == []
    assert len(api.get("/api/cells/?space=nasnet").json()["results"]) == 3


def test_cell_diagram_svg(api, cells):
    response = api.get(f"/api/cells/{cells['add'].pk}/diagram.svg", HTTP_ACCEPT="image/svg+xml")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in response.content and b"sep_conv_3x3" in response.content.replace(b"&#45;", b"-")


def test_cell_genotype_downloads(api, cells, add_genotype):
    response = api.get(f"/api/cells/{cells['add'].pk}/genotype.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="cell-{cells["add"].cell_hash[:12]}.json"'
    assert json.loads(response.content) == add_genotype

    for url in (f"/api/cells/{cells['add'].pk}/genotype.txt", f"/api/cells/{cells['add'].pk}/genotype.txt?format=darts"):
        response = api.get(url)
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain")
        text = response.content.decode().strip()
        assert text == parse_genotype(add_genotype).to_darts()
        assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('identity', 1)")

    response = api.get(f"/api/cells/{cells['concat'].pk}/genotype.txt")
    assert response.status_code == 400
    assert "DARTS" in response.json()["format"][0]
    assert api.get(f"/api/cells/{cells['add'].pk}/genotype.txt?format=yaml").status_code == 400


# -- compare ----------------------------------------------------------------------------------


@pytest.fixture
def compare_search(make_cell, make_trial, add_genotype):
    """`compare_search(owner, rewards, **fields)`: a search whose trials got these rewards (None: failed)."""

    def make(owner, rewards, **fields):
        search = make_search(owner, **fields)
        for index, reward in enumerate(rewards):
            genotype = {**add_genotype, "normal": add_genotype["normal"][:1]} if index % 2 else add_genotype
            make_trial(search, index, cell=make_cell(genotype), reward=reward, cell_hash=f"hash-{index}",
                       status=Trial.Status.FINISHED if reward is not None else Trial.Status.FAILED)
        return search

    return make


def test_compare(api, alice, compare_search):
    first = compare_search(alice, [0.2, 0.5, None, 0.4], strategy="random")
    second = compare_search(alice, [0.6, 0.1], strategy="ppo")
    response = api.get(f"/api/compare/?searches={first.pk},{second.pk}&top=1,2")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["top"] == [1, 2]
    assert [s["id"] for s in body["searches"]] == [first.pk, second.pk]
    run = body["runs"][0]
    assert run["strategy"] == "random"
    assert run["curves"]["1"] == [0.2, 0.5, 0.5, 0.5]
    assert run["curves"]["2"] == [None, pytest.approx(0.35), pytest.approx(0.35), pytest.approx(0.45)]
    assert body["runs"][1]["curves"]["1"] == [0.6, 0.6]
    assert {s["strategy"] for s in body["strategies"]} == {"random", "ppo"}
    default = api.get(f"/api/compare/?searches={first.pk}").json()
    assert default["top"] == [1, 5, 25]


def test_figure_6_counts_evaluated_models_only(api, alice, compare_search, make_trial, make_cell, add_genotype):
    """A cancelled trial is told to the strategy as failed, but it was never evaluated: it is not
    a model sampled on Figure 6's x axis (a failed one is)."""
    search = compare_search(alice, [0.2, None], strategy="random")
    make_trial(search, 2, cell=make_cell(add_genotype), cell_hash="hash-2", status=Trial.Status.CANCELLED)
    run = api.get(f"/api/compare/?searches={search.pk}&top=1").json()["runs"][0]
    assert run["curves"]["1"] == [0.2, 0.2]


@pytest.mark.parametrize("query", [
    "searches={unknown}", "searches={theirs}", "searches={first},{theirs}", "searches=", "", "searches=a,b",
    "searches={first},{cifar}", "searches={first},{macro}", "searches={first}&top=x", "searches={first}&top=0",
    "searches={first}&top=1,-5", "searches={first}&top=1,,x",
])
def test_compare_errors(api, alice, bob, query, compare_search):
    ids = {"first": compare_search(alice, [0.3]).pk, "theirs": compare_search(bob, [0.3]).pk, "unknown": 999999,
           "cifar": compare_search(alice, [0.3], dataset="cifar10").pk,
           "macro": compare_search(alice, [0.3], space="macro").pk}
    response = api.get("/api/compare/?" + query.format(**ids))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body.get("searches") or body.get("top")


def test_compare_space_message(api, alice, compare_search):
    ids = [compare_search(alice, [0.3]).pk, compare_search(alice, [0.3], dataset="cifar10").pk]
    body = api.get(f"/api/compare/?searches={ids[0]},{ids[1]}").json()
    assert body == {"searches": ["compare searches on the same space and dataset"]}
