"""Figure 6 that supports a conclusion (issue 19): the compare page and API say which k a search
has too few unique models for, count failed trials apart, give the 95% interval over seeds, say
when there are too few seeds, poll while a search runs; and "run N seeds of each strategy"."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.test import APIClient

from searchcore.compare import MIN_SEEDS
from tests.webapp.conftest import join_team
from webapp.searches.models import Search
from webapp.searches.services import search_seeds_create
from webapp.searches.services.seeds import MAX_SEED_SEARCHES, MAX_SEEDS
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def search_with(make_search, make_trial, no_broker):
    """`search_with(strategy, seed, rewards, status=finished)`: a search whose trials got these
    rewards, each a cell of its own (None: a failed trial)."""

    def make(strategy, seed, rewards, status=Search.Status.FINISHED):
        search = make_search(strategy=strategy, seed=seed, name=f"{strategy}-{seed}", budget=max(1, len(rewards)),
                             parallelism=1)
        Search.objects.filter(pk=search.pk).update(status=status)
        search.refresh_from_db()
        for index, reward in enumerate(rewards):
            make_trial(search, index, reward=reward, cell_hash=f"{strategy}-{seed}-{index}",
                       status=Trial.Status.FINISHED if reward is not None else Trial.Status.FAILED)
        return search

    return make


def _compare_data(html: str) -> dict:
    return json.loads(re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', html,
                                re.DOTALL).group(1))


def test_the_page_names_a_too_large_k_counts_failed_trials_and_says_too_few_seeds(client, user, search_with):
    ppo = search_with("ppo", 0, [0.2, None, 0.5, 0.4])
    rs = search_with("random", 0, [0.3, None, None])
    client.force_login(user)
    page = client.get(f"/searches/compare/?searches={ppo.pk},{rs.pk}&top=1,3")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="compare-errors"' not in html
    data = _compare_data(html)
    by_strategy = {g["strategy"]: g for g in data["strategies"]}
    assert by_strategy["random"]["shortfall"] == {"3": "needs 3 unique models, has 1"}
    assert by_strategy["ppo"]["shortfall"] == {}
    assert "random · top 3: needs 3 unique models, has 1" in html  # beside the chart, as in its legend
    assert [(r["sampled"], r["failed"], r["unique"]) for r in data["runs"]] == [(4, 1, 3), (3, 2, 1)]
    strategies = re.search(r'<table class="table compact" id="compare-strategies">(.*?)</table>', html, re.S).group(1)
    assert re.search(r'random</span></td><td class="num">1</td><td class="num">3</td><td class="num">2</td>', strategies)
    searches = re.search(r'<table class="table compact" id="compare-searches">(.*?)</table>', html, re.S).group(1)
    assert re.search(r'<td class="num">4</td><td class="num">1</td><td class="num">3</td>', searches)
    note = f"Not yet significant: the 95% interval needs at least {MIN_SEEDS} seeds per strategy"
    assert data["significance"].startswith(note) and 'id="compare-significance"' in html
    assert data["running"] is False and "hx-get" not in html  # all ended: nothing polls


def test_enough_seeds_give_an_interval_and_no_significance_note(client, user, search_with):
    searches = [search_with(strategy, seed, [0.1 * (seed + 1), 0.2 + 0.1 * seed])
                for strategy in ("ppo", "random") for seed in range(MIN_SEEDS)]
    client.force_login(user)
    html = client.get(f"/searches/compare/?searches={','.join(str(s.pk) for s in searches)}&top=1").content.decode()
    data = _compare_data(html)
    assert data["significance"] is None and 'id="compare-significance"' not in html
    ppo = data["strategies"][0]
    assert ppo["mean"]["1"] == pytest.approx([0.2, 0.3])
    # seeds 0..2 give 0.1, 0.2, 0.3 at n = 1: mean 0.2, s = 0.1, t(0.975, 2) = 4.3027
    assert ppo["ci_low"]["1"][0] == pytest.approx(0.2 - 4.3027 * 0.1 / 3 ** 0.5, abs=1e-5)
    assert ppo["ci_high"]["1"][0] == pytest.approx(0.2 + 4.3027 * 0.1 / 3 ** 0.5, abs=1e-5)


def test_the_results_poll_while_a_search_runs(client, user, search_with):
    done = search_with("ppo", 0, [0.2])
    running = search_with("random", 0, [0.3], status=Search.Status.RUNNING)
    client.force_login(user)
    html = client.get(f"/searches/compare/?searches={done.pk},{running.pk}&top=1").content.decode()
    assert f'hx-get="/searches/compare/?searches={done.pk}%2C{running.pk}&amp;top=1"' in html
    assert 'hx-select="#compare-results"' in html and 'hx-trigger="every 5s"' in html
    assert _compare_data(html)["running"] is True


def test_the_api_gives_the_interval_the_counts_and_the_notes(user, search_with):
    ppo = search_with("ppo", 0, [0.2, None])
    rs = search_with("random", 0, [0.3, 0.1])
    api = APIClient()
    api.force_login(user)
    body = api.get(f"/api/compare/?searches={ppo.pk},{rs.pk}&top=1,2").json()
    assert body["strategies"][0]["shortfall"] == {"2": "needs 2 unique models, has 1"}
    assert body["strategies"][0]["failed"] == 1 and body["strategies"][0]["sampled"] == 2
    assert body["strategies"][1]["ci_low"]["1"] == [None, None]  # one seed: no interval
    assert body["significance"].startswith("Not yet significant") and body["running"] is False


# -- run N seeds of each strategy ------------------------------------------------------------------


def test_seeds_are_made_with_the_base_settings_and_existing_ones_skipped(user, search_with):
    base = search_with("ppo", 1, [0.5])
    runs = search_seeds_create(user=user, base=base, strategies=["ppo", "random"], seeds=3)
    assert [(s.strategy, s.seed) for s in runs.existing] == [("ppo", 1)] and runs.existing[0].pk == base.pk
    assert sorted((s.strategy, s.seed) for s in runs.created) == [("ppo", 0), ("ppo", 2), ("random", 0),
                                                                  ("random", 1), ("random", 2)]
    for made in runs.created:
        assert (made.space, made.dataset, made.proxy_key, made.budget, made.parallelism, made.team_id) == \
               (base.space, base.dataset, base.proxy_key, base.budget, base.parallelism, base.team_id)
        assert made.status == Search.Status.QUEUED
    assert [(s.strategy, s.seed) for s in runs.searches] == [(st, seed) for st in ("ppo", "random") for seed in range(3)]
    again = search_seeds_create(user=user, base=base, strategies=["random", "ppo"], seeds=3)
    assert again.created == [] and len(again.existing) == 6


@pytest.mark.parametrize(("kwargs", "field", "reason"), [
    ({"seeds": 0}, "seeds", f"from 1 to {MAX_SEEDS}"),
    ({"seeds": MAX_SEEDS + 1}, "seeds", f"from 1 to {MAX_SEEDS}"),
    ({"seeds": "3"}, "seeds", "whole number"),
    ({"strategies": []}, "strategies", "pick at least one strategy"),
    ({"strategies": ["ppo", "hill-climbing"]}, "strategies", "unknown strategy 'hill-climbing'"),
    ({"strategies": ["ppo", "random", "evolution", "reinforce"], "seeds": MAX_SEEDS}, "seeds", f"at most {MAX_SEED_SEARCHES}"),
])
def test_seeds_refuse_bad_input_naming_the_field(user, search_with, kwargs, field, reason):
    base = search_with("ppo", 0, [0.5])
    with pytest.raises(ValidationError) as caught:
        search_seeds_create(user=user, base=base, **{"strategies": ["ppo"], "seeds": 2, **kwargs})
    assert reason in " ".join(caught.value.message_dict[field])
    assert Search.objects.count() == 1


def test_a_viewer_may_not_run_seeds(user, search_with):
    base = search_with("ppo", 0, [0.5])
    with pytest.raises(PermissionDenied, match="needs the member role"):
        search_seeds_create(user=join_team(base.team, "vic", "viewer"), base=base, strategies=["random"], seeds=2)


def test_the_seeds_form_makes_them_and_compares_them(client, user, search_with):
    base = search_with("ppo", 0, [0.5])
    other = search_with("random", 0, [0.4])
    client.force_login(user)
    html = client.get(f"/searches/compare/?searches={base.pk},{other.pk}&top=1").content.decode()
    assert 'id="seeds-form"' in html  # the compared strategies are ticked, the others not
    assert re.search(r'name="strategies" value="ppo"[^>]*checked', html)
    assert not re.search(r'name="strategies" value="evolution"[^>]*checked', html)
    response = client.post("/searches/compare/seeds/", {"base": base.pk, "strategies": ["ppo", "random"], "seeds": "2",
                                                        "searches": [base.pk, other.pk], "top": "1"})
    made = Search.objects.exclude(pk__in=[base.pk, other.pk]).order_by("strategy", "seed")
    assert [(s.strategy, s.seed) for s in made] == [("ppo", 1), ("random", 1)]
    ids = ",".join(str(pk) for pk in (base.pk, made[0].pk, other.pk, made[1].pk))
    assert response.status_code == 302 and response["Location"] == f"/searches/compare/?searches={ids.replace(',', '%2C')}&top=1"
    message = str(list(get_messages(response.wsgi_request))[0])
    assert f"#{made[0].pk} (ppo seed 1)" in message and f"Skipped, as they exist: #{base.pk} (ppo seed 0)" in message
    page = client.get(response["Location"]).content.decode()
    assert all(f'id="pick-{pk}" checked' in page for pk in ids.split(","))


def test_the_seeds_form_shows_the_services_refusal_on_the_page(client, user, search_with):
    base = search_with("ppo", 0, [0.5])
    other = search_with("random", 0, [0.4])
    client.force_login(user)
    response = client.post("/searches/compare/seeds/", {"base": base.pk, "strategies": ["ppo"], "seeds": "99",
                                                        "searches": [base.pk, other.pk], "top": "1"})
    html = response.content.decode()
    assert response.status_code == 400 and 'id="errors-seeds"' in html and f"from 1 to {MAX_SEEDS}" in html
    assert 'id="compare-chart"' in html and Search.objects.count() == 2


def test_the_seeds_api(user, other_user, search_with):
    base = search_with("ppo", 0, [0.5])
    api = APIClient()
    api.force_login(user)
    response = api.post(f"/api/searches/{base.pk}/seeds/", {"strategies": ["ppo", "random"], "seeds": 2}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["existing"] == [base.pk] and len(body["created"]) == 3 and body["searches"][0] == base.pk
    bad = api.post(f"/api/searches/{base.pk}/seeds/", {"strategies": ["ppo"], "seeds": 0}, format="json")
    assert bad.status_code == 400 and "from 1 to" in bad.json()["seeds"][0]
    outsider = APIClient()
    outsider.force_login(other_user)
    assert outsider.post(f"/api/searches/{base.pk}/seeds/", {"strategies": ["ppo"], "seeds": 1},
                         format="json").status_code == 404
