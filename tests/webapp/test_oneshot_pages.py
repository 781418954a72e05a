"""The pages of a one-shot search (issue 21), through the test client on rows built directly
(no supernet trained here: tests/webapp/test_oneshot.py runs the real one): the search page's
Supernet card in every state of its run, its chart data and best cells drawn, the per-trial
steering it hides, the "one-shot" mark of the trials its supernet ranked on the trials table, a
trial's page and the best cells, and the one-shot samplers on the new-search form."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from searchcore.spaces import parse_genotype
from webapp.cells.models import CellResult
from webapp.searches.models import OneShotRun, Search

pytestmark = pytest.mark.django_db

ONESHOT = {"controller": "reinforce", "epochs": 3, "controller_steps": 2, "final_samples": 4}


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def oneshot_search(make_search, queued_steps):
    return make_search(strategy="enas", strategy_options=ONESHOT, budget=2)


@pytest.fixture
def cells(add_genotype, concat_genotype) -> list[dict]:
    """Two cells as a supernet reports them: {cell_hash, genotype, val_acc}, best first."""
    return [{"cell_hash": parse_genotype(genotype).canonical_hash(), "genotype": genotype, "val_acc": acc}
            for genotype, acc in ((add_genotype, 0.625), (concat_genotype, 0.5))]


def epoch(number: int, leaders: list[dict]) -> dict:
    return {"epoch": number, "train_loss": 2.0 / number, "train_acc": 0.2 * number, "sampled_val_acc": 0.15 * number,
            "best_val_acc": 0.2 * number, "lr": 0.05, "seconds": 3.0, "leaders": leaders}


def make_run(search: Search, **fields) -> OneShotRun:
    return OneShotRun.objects.create(search=search, config={"proxy": {"epochs": ONESHOT["epochs"]}}, **fields)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def supernet_card(html: str) -> str:
    """The status part of the Supernet card, tags stripped and spaces collapsed."""
    part = html[html.index('id="supernet-status"'):html.index('id="supernet-epochs-data"')]
    return " ".join(re.sub(r"<[^>]+>", " ", part).split())


def test_a_training_supernet_shows_its_epoch_cost_worker_chart_and_best_cells(signed_in, oneshot_search, cells):
    make_run(oneshot_search, status=OneShotRun.Status.RUNNING, attempts=1, worker="gpu0@host-a",
             device="NVIDIA H100", gpu_seconds=5400, epochs=[epoch(1, cells[1:]), epoch(2, cells)], checkpoint_epoch=2)
    html = page(signed_in, reverse("searches:detail", args=[oneshot_search.pk]))
    card = supernet_card(html)
    assert "Supernet" in html and "training Epoch 3 of 3" in card
    assert "1.5 on NVIDIA H100" in card and "gpu0@host-a" in card  # 5400 s = 1.5 GPU-hours
    assert "Its supernet trains on gpu0@host-a (below)" in html  # the status card's workers
    data = json.loads(re.search(r'id="supernet-epochs-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert [(e["epoch"], e["sampled_val_acc"], e["best_val_acc"]) for e in data] == [(1, 0.15, 0.2), (2, 0.3, 0.4)]
    assert 'data-chart="supernet"' in html and 'data-source="supernet-epochs-data"' in html

    best = html[html.index('id="supernet-cells"'):]
    assert "Best cells so far" in best  # the latest epoch's leaders, drawn, with their shared-weight accuracy
    assert [m for m in re.findall(r'data-cell-hash="(\w+)"', best)] == [c["cell_hash"] for c in cells]
    assert "62.50%" in best and "50.00%" in best
    diagrams = re.findall(r'<img src="([^"]+)"', best)
    assert diagrams == [reverse("searches:supernet-cell-diagram", args=[oneshot_search.pk, c["cell_hash"]])
                        for c in cells]
    drawn = signed_in.get(diagrams[1])  # a leader that is no trial nor cell row yet, drawn from the run's report
    assert drawn.status_code == 200 and drawn["Content-Type"] == "image/svg+xml" and b"<svg" in drawn.content
    assert signed_in.get(diagrams[1].replace(cells[1]["cell_hash"], "0" * 64)).status_code == 404

    live = page(signed_in, reverse("searches:live", args=[oneshot_search.pk]))  # the poll brings both parts
    assert 'id="supernet-status" hx-swap-oob="true"' in live and 'id="supernet-cells" hx-swap-oob="true"' in live
    assert "Epoch 3 of 3" in live


@pytest.mark.parametrize(("fields", "words"), [
    (None, "queued The supernet starts at the search's first control step."),
    ({"status": "pending"}, "queued Waiting for a gpu worker."),
    ({"status": "pending", "attempts": 1, "checkpoint_epoch": 1, "error": "the training process was killed (SIGKILL)"},
     "requeued Attempt 2 waits for a gpu worker; it resumes after epoch 1. The last attempt ended: the training "
     "process was killed (SIGKILL)"),
    ({"status": "running", "attempts": 2, "pause_requested": True}, "pausing Stops after epoch 2 of 3."),
    ({"status": "running", "attempts": 2}, "Epoch 2 of 3 · attempt 2"),
    ({"status": "paused", "checkpoint_epoch": 1}, "paused After epoch 1 of 3; resuming the search goes on"),
    ({"status": "failed", "error": "CUDA out of memory"}, "failed The supernet failed. CUDA out of memory"),
])
def test_the_supernet_card_says_what_its_run_is_doing(signed_in, oneshot_search, cells, fields, words):
    if fields is not None:
        make_run(oneshot_search, epochs=[epoch(1, cells)], **fields)
    assert words in supernet_card(page(signed_in, reverse("searches:detail", args=[oneshot_search.pk])))


def test_a_finished_supernets_top_cells_link_their_trials_marked_one_shot_everywhere(
        signed_in, oneshot_search, cells, make_cell, make_trial):
    make_run(oneshot_search, status=OneShotRun.Status.FINISHED, epochs=[epoch(1, cells[1:])], top=cells,
             final=cells * 2, gpu_seconds=36)
    trials = [make_trial(oneshot_search, index, cell=make_cell(cell["genotype"]), reward=0.9 - index / 10,
                         shared_weight_acc=cell["val_acc"]) for index, cell in enumerate(cells)]
    CellResult.objects.create(cell=trials[0].cell, team=oneshot_search.team, dataset="digits",
                              proxy_key=oneshot_search.proxy_key, best_trial=trials[0], best_reward=0.9)
    html = page(signed_in, reverse("searches:detail", args=[oneshot_search.pk]))
    assert "finished 1 epoch; 4 cells sampled and ranked with the shared weights, the best 2" in supernet_card(html)
    best = html[html.index('id="supernet-cells"'):html.index('id="search-trials"')]
    assert "Top cells, ranked on the whole validation split" in best  # `top`, not the last epoch's one leader
    assert re.findall(r'data-cell-hash="(\w+)"', best) == [c["cell_hash"] for c in cells]
    for trial in trials:
        assert f'href="/trials/{trial.pk}/">trial {trial.index}</a>: standalone reward' in best
    table = html[html.index('id="trials-table"'):]
    assert table.count("one-shot · shared-weight") == 2 and "one-shot · shared-weight 62.50%" in table

    trial_page = page(signed_in, reverse("trials:detail", args=[trials[0].pk]))
    assert "one-shot · shared-weight 62.50%" in trial_page and "90.00%" in trial_page
    assert 'id="fork-trial"' not in trial_page  # a one-shot search has no strategy state to fork
    cells_page = page(signed_in, reverse("cells:list"))
    assert "one-shot · shared-weight 62.50%" in cells_page


def test_the_supernets_last_checkpoint_downloads_once_stored(signed_in, oneshot_search, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    run = make_run(oneshot_search, status=OneShotRun.Status.PAUSED)
    url = reverse("searches:supernet-checkpoint", args=[oneshot_search.pk])
    detail = reverse("searches:detail", args=[oneshot_search.pk])
    assert signed_in.get(url).status_code == 404 and url not in page(signed_in, detail)
    run.checkpoint_epoch = 2
    run.last_checkpoint.save("last.pt", ContentFile(b"supernet weights"), save=True)
    assert f'href="{url}" download' in page(signed_in, detail)
    response = signed_in.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"supernet weights"
    assert f'filename="search{oneshot_search.pk}-supernet-epoch2.pt"' in response["Content-Disposition"]


def test_a_per_trial_searchs_trials_carry_no_one_shot_mark_nor_supernet(signed_in, make_search, make_trial,
                                                                         queued_steps):
    search = make_search()
    trial = make_trial(search, 0)
    html = page(signed_in, reverse("searches:detail", args=[search.pk]))
    assert 'id="search-supernet"' not in html and "one-shot ·" not in html
    assert "one-shot ·" not in page(signed_in, reverse("trials:detail", args=[trial.pk]))


def test_the_steering_card_hides_per_trial_controls_for_a_one_shot_search(signed_in, oneshot_search):
    Search.objects.filter(pk=oneshot_search.pk).update(status=Search.Status.RUNNING, strategy_state=b"x")
    html = page(signed_in, reverse("searches:detail", args=[oneshot_search.pk]))
    assert 'id="enqueue-form"' not in html and 'id="fork-search"' not in html
    assert "takes no cell by hand, no fork" in html
    budget = re.search(r'<input[^>]*name="budget"[^>]*>', html[html.index('id="steer-form"'):]).group(0)
    assert "readonly" in budget and 'value="2"' in budget
    fork = signed_in.get(reverse("searches:fork", args=[oneshot_search.pk]), follow=True)  # a link kept from before
    assert fork.redirect_chain[-1][0] == reverse("searches:detail", args=[oneshot_search.pk])
    assert "Not forked: a one-shot search takes no forks" in fork.content.decode()


def test_another_teams_one_shot_search_and_its_cells_are_404(client, other_user, oneshot_search, cells):
    make_run(oneshot_search, status=OneShotRun.Status.RUNNING, epochs=[epoch(1, cells)])
    client.force_login(other_user)
    for name, args in (("searches:detail", []), ("searches:live", []),
                       ("searches:supernet-cell-diagram", [cells[0]["cell_hash"]])):
        assert client.get(reverse(name, args=[oneshot_search.pk, *args])).status_code == 404


FORM = {"name": "one-shot", "space": "nasnet", "strategy": "enas", "dataset": "digits", "budget": "2",
        "parallelism": "1", "epochs": "1", "cells": "1", "filters": "48", "batch_size": "128", "seed": "0",
        "space_options": "", "strategy_options": json.dumps(ONESHOT)}


def test_the_new_search_form_offers_the_one_shot_samplers_and_launches_one(signed_in, queued_steps):
    html = page(signed_in, reverse("searches:new"))
    assert re.search(r'<option value="enas">enas: ENAS: an LSTM controller', html)
    assert '<option value="oneshot-random">oneshot-random: random search with weight sharing' in html
    assert "controller, epochs, controller_steps, final_samples, sampler_options" in html
    assert "number of top cells its supernet ranks" in html

    response = signed_in.post(reverse("searches:new"), FORM)
    assert response.status_code == 302
    search = Search.objects.get(name="one-shot")
    assert (search.strategy, search.strategy_options, search.budget) == ("enas", ONESHOT, 2)


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"strategy_options": json.dumps({**ONESHOT, "controller": "evolution"})}, "strategy_options", "reinforce, ppo"),
    ({"strategy_options": json.dumps({"steps": 3})}, "strategy_options", "not an option of one-shot search"),
    ({"budget": "5"}, "budget", "the budget must be 1 to 4"),
])
def test_the_new_search_form_puts_a_one_shot_error_on_its_field(signed_in, queued_steps, changes, field, words):
    response = signed_in.post(reverse("searches:new"), {**FORM, **changes})
    assert response.status_code == 200 and not Search.objects.exists()
    errors = response.context["form"].errors
    assert list(errors) == [field] and words in errors[field][0]


def test_the_supernets_gpu_hours_count_a_running_attempt_up_to_now(signed_in, oneshot_search, settings):
    from webapp.searches.selectors import supernet_gpu_seconds

    now, half_the_timeout = timezone.now(), settings.CELLSEARCH_HEARTBEAT_TIMEOUT / 2
    run = make_run(oneshot_search, status=OneShotRun.Status.RUNNING, gpu_seconds=3600.0,
                   heartbeat_at=now - timedelta(seconds=half_the_timeout))
    assert supernet_gpu_seconds(run=run, now=now) == pytest.approx(3600.0 + half_the_timeout)
    run.heartbeat_at = now - timedelta(hours=2)  # a silent worker: presumed dead after the timeout
    assert supernet_gpu_seconds(run=run, now=now) == pytest.approx(3600.0 + settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    run.status = OneShotRun.Status.PAUSED
    assert supernet_gpu_seconds(run=run, now=now) == 3600.0
