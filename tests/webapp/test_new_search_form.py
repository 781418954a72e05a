"""The new-search form tells everything at once: one submit reports every field at fault (the
form's checks and the search service's), the inputs carry their bounds, the dataset's files are
checked before anything is queued (form and API), and the API's Swagger example launches."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from searchcore.cost import dataset_shape, estimate_proxy_cost, sample_cells
from searchcore.proxy import INT_BOUNDS, ProxyConfig
from webapp.searches.models import Search
from webapp.searches.services.lifecycle import MAX_BUDGET, MAX_PARALLELISM
from webapp.searches.templatetags.cellsearch import humancount
from webapp.searches.templatetags.search_cost import duration

pytestmark = pytest.mark.django_db

FORM = {
    "name": "form demo", "space": "nasnet", "strategy": "random", "dataset": "digits", "budget": "3",
    "parallelism": "1", "epochs": "1", "cells": "1", "filters": "48", "batch_size": "64", "seed": "0",
    "strategy_options": "", "space_options": "",
}


def errors_of(html: str, field: str) -> str:
    found = re.search(rf'<ul class="errorlist" id="errors-{field}">(.*?)</ul>', html, re.S)
    return found.group(1) if found else ""


def test_the_reviews_four_errors_come_back_from_one_submit(client, user, queued_steps):
    client.force_login(user)
    response = client.post("/searches/new/", {**FORM, "budget": "0", "parallelism": "5", "epochs": "-1",
                                              "filters": "10000000"})
    html = response.content.decode()
    assert response.status_code == 200 and not Search.objects.exists() and not queued_steps
    assert "must be a whole number from 1 to 1,000,000, got 0" in errors_of(html, "budget")
    assert "must not exceed the budget (0), got 5" in errors_of(html, "parallelism")  # the service's, same submit
    assert "must be a whole number from 1 to 10,000, got -1" in errors_of(html, "epochs")
    assert "must be a whole number from 48 to 4,032, a multiple of 24, got 10000000" in errors_of(html, "filters")
    summary = re.search(r'<div class="alert alert-error" id="error-summary".*?</div>', html, re.S).group(0)
    assert "4 problems to fix" in summary
    for field in ("budget", "parallelism", "epochs", "filters"):
        assert f'href="#id_{field}"' in summary


def test_service_errors_join_the_forms_own(client, user, queued_steps):
    """A field the form rejects and one only the service knows is wrong (an unknown space
    option), in one response."""
    client.force_login(user)
    response = client.post("/searches/new/", {**FORM, "budget": "lots", "space_options": '{"num_blokcs": 3}'})
    html = response.content.decode()
    assert "must be a whole number from 1 to 1,000,000" in errors_of(html, "budget")
    assert "num_blokcs" in errors_of(html, "space_options")
    assert "2 problems to fix" in html


def test_number_inputs_carry_the_services_bounds(client, user):
    client.force_login(user)
    html = client.get("/searches/new/").content.decode()

    def attrs(name: str) -> str:
        return re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)

    assert 'min="1"' in attrs("budget") and f'max="{MAX_BUDGET}"' in attrs("budget")
    assert f'max="{MAX_PARALLELISM}"' in attrs("parallelism")
    for name in ("epochs", "cells", "filters", "base_filters", "batch_size"):
        low, high = INT_BOUNDS[name]
        assert f'min="{low}"' in attrs(name) and f'max="{high}"' in attrs(name), name
    assert 'step="24"' in attrs("filters")
    assert "1 to 1,000,000" in html and "penultimate layer" in html  # ranges and N@F up front


# -- the dataset's files, checked at submit ---------------------------------------------------


@pytest.fixture
def data_root(settings, tmp_path):
    settings.CELLSEARCH_DATA_ROOT = str(tmp_path)
    return tmp_path


def test_a_cifar10_search_without_its_files_is_refused_naming_what_is_missing(client, user, data_root,
                                                                              queued_steps):
    client.force_login(user)
    (data_root / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    (data_root / "cifar10" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    html = client.post("/searches/new/", {**FORM, "dataset": "cifar10"}).content.decode()
    message = errors_of(html, "dataset")
    assert "data_batch_2" in message and "test_batch" in message and "data_batch_1," not in message
    assert str(data_root / "cifar10") in message
    assert not Search.objects.exists() and not queued_steps


def test_the_api_refuses_an_imagefolder_search_without_its_folders(user, data_root, queued_steps):
    api = APIClient()
    api.force_login(user)
    (data_root / "imagefolder" / "train").mkdir(parents=True)
    response = api.post("/api/searches/", {"dataset": "imagefolder", "budget": 2, "strategy": "random"},
                        format="json")
    assert response.status_code == 400
    assert "lacks val/ " in response.json()["dataset"][0]
    (data_root / "imagefolder" / "val").mkdir()
    assert api.post("/api/searches/", {"dataset": "imagefolder", "budget": 2, "strategy": "random"},
                    format="json").status_code == 201


def test_the_check_can_be_turned_off_for_a_web_host_without_the_data(user, data_root, settings, queued_steps):
    settings.CELLSEARCH_CHECK_DATA_FILES = False
    api = APIClient()
    api.force_login(user)
    response = api.post("/api/searches/", {"dataset": "cifar10", "budget": 2, "strategy": "random"}, format="json")
    assert response.status_code == 201


# -- the API's example ----------------------------------------------------------------------------


def test_the_swagger_example_launches_a_search(user, queued_steps):
    api = APIClient()
    api.force_login(user)
    schema = api.get("/api/schema/?format=json").json()
    body = schema["paths"]["/api/searches/"]["post"]["requestBody"]["content"]["application/json"]
    [example] = body["examples"].values()
    response = api.post("/api/searches/", example["value"], format="json")
    assert response.status_code == 201, response.json()
    assert Search.objects.get().proxy["filters"] == example["value"]["proxy"]["filters"]


def test_the_api_names_every_proxy_setting_at_fault_at_once(user, queued_steps):
    """ProxyConfig stops at its first error; the service asks again without it until none is left."""
    api = APIClient()
    api.force_login(user)
    response = api.post("/api/searches/", {"budget": 2, "proxy": {"epochs": -1, "filters": 10_000_000, "cells": 0}},
                        format="json")
    assert response.status_code == 400
    assert set(response.json()["proxy"]) == {"epochs", "filters", "cells"}, response.json()


# -- the live estimate ------------------------------------------------------------------------------

ESTIMATE_URL = "/searches/new/estimate/"
PROXY = {"epochs": 1, "cells": 1, "filters": 48, "batch_size": 64}


def estimate(client, **changes) -> str:
    response = client.get(ESTIMATE_URL, {**FORM, **changes})
    assert response.status_code == 200
    return response.content.decode()


def test_the_estimate_counts_the_child_and_cautions_without_history(client, user):
    client.force_login(user)
    html = estimate(client)
    expected = estimate_proxy_cost(ProxyConfig(dataset="digits", **PROXY), dataset_shape("digits"), sample_cells())
    assert f'id="estimate-params">{humancount(expected.params.median)}<' in html
    assert f'id="estimate-mult-adds">{humancount(expected.mult_adds.median)}<' in html
    assert "over 32 random cells" in html
    assert "no measurement yet on your workers" in html
    assert 'id="estimate-caution"' in html and "no trials of your teams" in html  # 1 epoch, no history
    assert 'id="estimate-caution"' not in estimate(client, epochs="5")
    wider = estimate(client, filters="96")
    assert f'id="estimate-params">{humancount(expected.params.median)}<' not in wider


def test_the_estimate_warns_from_the_teams_trials_under_the_same_proxy(client, user, other_user, make_search,
                                                                         make_trial, queued_steps):
    client.force_login(user)
    search = make_search(proxy=dict(PROXY))
    for index, reward in enumerate([0.077, 0.12, 0.24]):  # as the review saw: near chance on 10 classes
        make_trial(search, index, reward=reward, mult_adds=2_000_000, gpu_seconds=10.0, epochs=[{"epoch": 1}])
    html = estimate(client)
    warning = re.search(r'id="estimate-warning">(.*?)</div>', html, re.S).group(1)
    assert "3 finished trials" in warning and "12.0%" in warning and "7.7%–24.0%" in warning
    assert "10.0%" in warning  # chance
    # each trial did 2,000,000 mult-adds × 1,197 images × 1 epoch in 10 s: a child of M mult-adds takes M / 200,000 s
    median = estimate_proxy_cost(ProxyConfig(dataset="digits", **PROXY), dataset_shape("digits"),
                                 sample_cells()).mult_adds.median
    assert f'id="estimate-seconds">{duration(median / 200_000)}<' in html
    assert "trained their last 3 trials" in html and f"about {duration(3 * median / 200_000)} of GPU time" in html
    other_proxy = estimate(client, epochs="3")
    assert 'id="estimate-warning"' not in other_proxy and "3 finished trials" not in other_proxy

    client.force_login(other_user)  # another team's trials neither warn nor time
    theirs = estimate(client)
    assert 'id="estimate-warning"' not in theirs and "no measurement yet on your workers" in theirs


def test_the_estimate_says_why_there_is_none(client, user):
    client.force_login(user)
    assert "No estimate for the macro space" in estimate(client, space="macro")
    assert "No estimate until Filters F is fixed" in estimate(client, filters="50")
    assert "base_filters" in estimate(client, base_filters="4")  # both widths: ProxyConfig's reason
    assert "imagefolder" in estimate(client, dataset="imagefolder")  # its classes are not visible here
    assert "num_blocks" in estimate(client, space_options='{"num_blocks": 99}')
    assert "num_blokcs" in estimate(client, space_options='{"num_blokcs": 3}')
