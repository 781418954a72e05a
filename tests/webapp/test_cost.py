"""Cost (issue 18, part 3): every trial and transfer records its GPU-seconds (wall-clock seconds of
every attempt × devices, lost attempts included) and its device; a search shows its GPU-hours,
trials per GPU-hour, an estimate to finish and its best reward against GPU-hours; compare shows
each strategy's best reward per GPU-hour."""

import json
import re
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

import searchcore.runner
import webapp.trials.services as trial_services
from searchcore.results import EpochMetrics, TrainResult
from searchcore.runner import TrainingProcessError, TrialOutcome
from tests.conftest import wait_until
from webapp.celery import app as celery_app
from webapp.searches.models import Search
from webapp.searches.selectors import best_reward_per_gpu_hour, search_cost, search_cost_curve
from webapp.transfers.models import Transfer
from webapp.transfers.services.training import transfer_run
from webapp.trials.models import Trial
from webapp.trials.services import trial_claim, trial_run

T0 = timezone.now().replace(microsecond=0)


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() reads `clock[0]`; tests move it on by hand."""
    now = [T0]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    return now


@pytest.fixture
def cpu_only(monkeypatch):
    """No nvidia-smi here, whatever the machine: the device is "cpu"."""
    monkeypatch.setattr(trial_services.shutil, "which", lambda name: None)
    trial_services.run_device.cache_clear()
    yield
    trial_services.run_device.cache_clear()


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, args=(), **kw: messages.append((name, tuple(args))))
    monkeypatch.setattr(celery_app.control, "revoke", lambda *a, **k: None)
    return messages


def _result(reward: float) -> TrainResult:
    epoch = EpochMetrics(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=reward, lr=0.05,
                         seconds=1.0, images_per_second=100.0)
    return TrainResult(reward=reward, val_acc=reward, best_val_acc=reward, test_acc=None, params=10, mult_adds=20,
                       epochs=[epoch], stopped=False, seconds=1.0)


# -- services: the seconds of every attempt add up ---------------------------------------------------


@pytest.mark.django_db
def test_a_lost_attempt_then_a_finished_one_add_up(make_search, make_trial, clock, cpu_only, sent, monkeypatch):
    trial = make_trial(make_search(), 0, status=Trial.Status.PENDING)
    attempts = iter([(30, "lost"), (45, "finished")])

    def train(genotype, config, *, on_epoch=None, **kwargs):
        seconds, how = next(attempts)
        if how == "lost":
            clock[0] += timedelta(seconds=seconds)
            raise TrainingProcessError("training process crashed: signal 9 (SIGKILL)")
        clock[0] += timedelta(seconds=20)
        assert on_epoch(_result(0.75).epochs[0]) is not False  # a beat adds the seconds since the claim
        assert Trial.objects.get(pk=trial.pk).gpu_seconds == 30.0 + 20.0
        clock[0] += timedelta(seconds=seconds - 20)
        return _result(0.75)

    monkeypatch.setattr(searchcore.runner, "train_in_subprocess", train)
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.PENDING and trial.gpu_seconds == 30.0 and trial.device == "cpu"
    clock[0] += timedelta(seconds=100)  # queued: waiting costs nothing
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.FINISHED and trial.attempts == 2
    assert trial.gpu_seconds == 75.0 and trial.device == "cpu"


class WorkerDied(BaseException):
    """The worker process ends here, mid-training: nothing after it runs."""


@pytest.mark.django_db
def test_a_dead_workers_attempt_counts_up_to_its_last_beat_and_a_failed_one_counts(
        make_search, make_trial, clock, cpu_only, sent, settings, monkeypatch):
    from webapp.searches.services.reconcile import searches_reconcile

    trial = make_trial(make_search(), 0, status=Trial.Status.PENDING)

    def beat_then_die(genotype, config, *, on_epoch=None, **kwargs):
        clock[0] += timedelta(seconds=20)
        on_epoch(_result(0.5).epochs[0])
        clock[0] += timedelta(seconds=7)  # trained on, then died before the next beat
        raise WorkerDied

    monkeypatch.setattr(searchcore.runner, "train_in_subprocess", beat_then_die)
    with pytest.raises(WorkerDied):
        trial_run(trial_id=trial.pk)
    assert Trial.objects.get(pk=trial.pk).gpu_seconds == 20.0
    clock[0] += timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1)
    assert trial.pk in searches_reconcile()["requeued"]

    def diverge(genotype, config, **kwargs):
        clock[0] += timedelta(seconds=12)
        raise searchcore.runner.TrialFailedError("the loss diverged")

    monkeypatch.setattr(searchcore.runner, "train_in_subprocess", diverge)
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.FAILED and trial.attempts == 2
    assert trial.gpu_seconds == 32.0 and trial.device == "cpu"


@pytest.mark.django_db
def test_a_stale_claim_adds_nothing_twice(make_search, make_trial, clock, settings):
    trial = make_trial(make_search(), 0, status=Trial.Status.RUNNING, attempts=1, started_at=_at(-100),
                       heartbeat_at=_at(-60), gpu_seconds=40.0)
    assert trial_claim(trial_id=trial.pk) is not None  # its worker is presumed dead: counted up to its last beat
    assert Trial.objects.get(pk=trial.pk).gpu_seconds == 40.0


@pytest.mark.django_db
def test_a_transfers_attempts_add_up(transfer_source, user, clock, cpu_only, sent, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CELLSEARCH_DATA_ROOT = str(tmp_path / "data")
    transfer = Transfer.objects.create(team=transfer_source.search.team, owner=user, cell=transfer_source.cell,
                                       genotype=transfer_source.genotype, cell_hash=transfer_source.cell_hash,
                                       source_trial=transfer_source, dataset="digits",
                                       config={"epochs": 1, "cells": 1, "filters": 24})
    attempts = iter([(20, TrialOutcome("lost", message="training process killed by SIGKILL")),
                     (40, TrialOutcome("failed", message="the loss diverged"))])

    def run_transfer(genotype, config, *, on_beat=None, **kwargs):
        seconds, outcome = next(attempts)
        clock[0] += timedelta(seconds=seconds / 2)
        assert on_beat(None) is not False  # a beat adds the seconds since the claim
        assert Transfer.objects.get(pk=transfer.pk).gpu_seconds == transfer.gpu_seconds + seconds / 2
        clock[0] += timedelta(seconds=seconds / 2)
        return outcome

    monkeypatch.setattr(searchcore.runner, "run_transfer", run_transfer)
    transfer_run(transfer_id=transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.PENDING and transfer.gpu_seconds == 20.0
    clock[0] += timedelta(seconds=300)
    transfer_run(transfer_id=transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.FAILED and transfer.attempts == 2 and transfer.gpu_seconds == 60.0


# -- selectors: totals, rate, estimate, curve ----------------------------------------------------------


def _at(seconds: float):
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def costed_search(make_search, make_trial):
    """Budget 10, running. In the order they ended: trial 0 (finished, 0.5, 100 s), trial 1 (failed,
    300 s with a lost attempt), trial 2 (finished, 0.7, 200 s); trial 3 queued again after a lost
    50 s attempt, or (running=True) training since second 250."""

    def make(*, running: bool = False, strategy: str = "random", seed: int = 0, scale: float = 1.0) -> Search:
        search = make_search(budget=10, strategy=strategy, seed=seed)
        Search.objects.filter(pk=search.pk).update(status=Search.Status.RUNNING)
        search.refresh_from_db()
        make_trial(search, 0, reward=0.5, started_at=_at(0), finished_at=_at(100), gpu_seconds=100 * scale,
                   device="cpu")
        make_trial(search, 1, status=Trial.Status.FAILED, started_at=_at(0), finished_at=_at(200),
                   gpu_seconds=300 * scale, device="cpu")
        make_trial(search, 2, reward=0.7, started_at=_at(100), finished_at=_at(300), gpu_seconds=200 * scale,
                   device="cpu")
        # running: 50 s lost earlier, and 140 s of this attempt recorded at its last beat (second 390)
        make_trial(search, 3, status=Trial.Status.RUNNING if running else Trial.Status.PENDING,
                   started_at=_at(250), heartbeat_at=_at(390) if running else None,
                   gpu_seconds=(190 if running else 50) * scale)
        return search

    return make


@pytest.mark.django_db
def test_totals_rate_and_estimate(costed_search, settings):
    settings.CELLSEARCH_HEARTBEAT_TIMEOUT = 60
    search = costed_search(running=True)
    cost = search_cost(search=search, now=_at(400))
    assert cost["gpu_hours"] == pytest.approx((790 + 10) / 3600)  # recorded + the running attempt since its beat
    # a silent worker's trial counts until it is presumed dead, no longer
    assert search_cost(search=search, now=_at(1000))["gpu_hours"] == pytest.approx((790 + 60) / 3600)
    assert cost["trials_per_gpu_hour"] == pytest.approx(3 / (600 / 3600))  # 18: done trials ÷ their GPU-hours
    assert cost["trials_done"] == 3 and cost["remaining"] == 7 and cost["devices"] == ["cpu"]
    # 3 done in the 300 s from the first one's claim to the last one's end: 7 more take 700 s;
    # a done trial took 200 GPU-seconds on average: 7 more take 1400.
    assert cost["estimate"]["seconds"] == pytest.approx(700)
    assert cost["estimate"]["gpu_hours"] == pytest.approx(1400 / 3600)


@pytest.mark.django_db
def test_no_estimate_before_two_trials_or_after_the_end(make_search, make_trial, costed_search):
    search = make_search(budget=5)
    make_trial(search, 0, started_at=_at(0), finished_at=_at(10), gpu_seconds=10)
    cost = search_cost(search=search, now=_at(20))
    assert cost["gpu_hours"] == pytest.approx(10 / 3600) and cost["trials_per_gpu_hour"] == pytest.approx(360)
    assert cost["estimate"] == {"seconds": None, "gpu_hours": None}
    empty = search_cost(search=make_search(budget=5))
    assert empty["gpu_hours"] == 0 and empty["trials_per_gpu_hour"] is None
    ended = costed_search()
    Search.objects.filter(pk=ended.pk).update(status=Search.Status.CANCELLED)
    ended.refresh_from_db()
    assert search_cost(search=ended)["estimate"] == {"seconds": None, "gpu_hours": None}


@pytest.mark.django_db
def test_best_reward_against_gpu_hours(costed_search):
    curve = search_cost_curve(search=costed_search())
    assert curve == {"gpu_hours": [round(100 / 3600, 6), round(600 / 3600, 6)], "best": [0.5, 0.7]}
    # 0.7 reached after 600 GPU-seconds (trials 0, 1 and 2): 0.7 / (1/6 h)
    assert best_reward_per_gpu_hour(curve) == pytest.approx(4.2, rel=1e-4)
    assert best_reward_per_gpu_hour({"gpu_hours": [], "best": []}) is None


# -- pages and API -------------------------------------------------------------------------------------


def _json_script(html: str, element_id: str):
    return json.loads(re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html,
                                re.DOTALL).group(1))


@pytest.mark.django_db
def test_the_search_page_shows_its_cost(client, user, costed_search):
    search = costed_search()
    client.force_login(user)
    html = client.get(f"/searches/{search.pk}/").content.decode()
    assert 'id="search-cost"' in html
    assert re.search(r'id="cost-gpu-hours">0\.181<', html)  # 650 s
    assert re.search(r'id="cost-trials-per-gpu-hour">18<', html)
    assert re.search(r'id="cost-estimate-time">11 min<', html)  # 700 s
    assert re.search(r'id="cost-estimate-gpu-hours">0\.389<', html)  # 1400 s
    assert re.search(r'id="cost-devices">cpu<', html) and "no GPU was used" in html
    chart = _json_script(html, "cost-chart-data")
    assert chart["searches"][0]["curve"]["best"] == [0.5, 0.7]
    assert 'data-chart="cost" data-source="cost-chart-data"' in html


@pytest.mark.django_db
def test_a_new_search_page_shows_dashes(client, user, make_search):
    search = make_search()
    client.force_login(user)
    html = client.get(f"/searches/{search.pk}/").content.decode()
    assert re.search(r'id="cost-gpu-hours">0<', html) and re.search(r'id="cost-estimate-time">—<', html)
    assert 'id="cost-chart-empty"' in html and 'id="cost-chart-data"' not in html
    # charts.js fetches the page again when the live poller's count or status moves past these
    assert f'data-cost-panel="search-poller" data-done="0" data-status="{search.status}"' in html


@pytest.mark.django_db
def test_compare_shows_best_reward_per_gpu_hour(client, user, costed_search):
    a = costed_search(strategy="random", seed=0)
    b = costed_search(strategy="evolution", seed=1, scale=2.0)
    client.force_login(user)
    html = client.get(f"/searches/compare/?searches={a.pk},{b.pk}&top=1").content.decode()
    assert 'id="compare-cost"' in html and 'id="per-gpu-hour-definition"' in html
    assert "the best reward a search reached ÷ the GPU-hours it had spent when it reached it" in html
    cost = _json_script(html, "compare-data")["cost"]
    by_strategy = {row["strategy"]: row for row in cost["strategies"]}
    assert by_strategy["random"]["best_per_gpu_hour"] == pytest.approx(4.2, rel=1e-4)
    assert by_strategy["evolution"]["best_per_gpu_hour"] == pytest.approx(2.1, rel=1e-4)  # twice the GPU-hours
    assert by_strategy["evolution"]["gpu_hours"] == pytest.approx(1300 / 3600)
    assert html.count('class="cost-strategy"') == 2 and html.count('class="cost-search"') == 2
    assert 'data-chart="cost" data-source="compare-data"' in html
    api = APIClient()
    api.force_login(user)
    data = api.get(f"/api/compare/?searches={a.pk},{b.pk}&top=1").json()
    assert [row["strategy"] for row in data["cost"]["strategies"]] == ["random", "evolution"]


@pytest.mark.django_db
def test_the_api_reports_cost_and_devices(user, costed_search, transfer_source):
    search = costed_search()
    api = APIClient()
    api.force_login(user)
    cost = api.get(f"/api/searches/{search.pk}/").json()["cost"]
    assert cost["gpu_hours"] == pytest.approx(650 / 3600)
    assert cost["trials_per_gpu_hour"] == pytest.approx(18)
    assert cost["estimate"]["seconds"] == pytest.approx(700)
    assert cost["estimate"]["gpu_hours"] == pytest.approx(1400 / 3600)
    trials = api.get(f"/api/searches/{search.pk}/trials/").json()["results"]
    first = next(t for t in trials if t["index"] == 1)
    assert first["gpu_seconds"] == 300 and first["device"] == "cpu"
    trial = api.get(f"/api/trials/{first['id']}/").json()
    assert trial["gpu_seconds"] == 300 and trial["device"] == "cpu"
    transfer = Transfer.objects.create(team=search.team, owner=user, cell=transfer_source.cell,
                                       genotype=transfer_source.genotype, cell_hash=transfer_source.cell_hash,
                                       gpu_seconds=42.5)
    assert api.get(f"/api/transfers/{transfer.pk}/").json()["gpu_seconds"] == 42.5
    assert api.get("/api/transfers/").json()["results"][0]["gpu_seconds"] == 42.5


# -- a real worker ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_trial_records_its_gpu_seconds_and_device(celery_worker_process, user, tiny_proxy):
    from webapp.searches.services import search_create

    with transaction.atomic():
        search = search_create(user=user, space="nasnet", strategy="random", dataset="digits", budget=1,
                               parallelism=1, seed=3, proxy={**tiny_proxy, "device": "cpu"})

    def ended():
        search.refresh_from_db()
        return search.status in Search.ENDED

    wait_until(ended, 180, "the search to end", logs=celery_worker_process.log)
    trial = search.trials.get()
    assert trial.status == Trial.Status.FINISHED, trial.error
    assert trial.gpu_seconds > 0 and trial.device == "cpu"
    assert trial.gpu_seconds >= (trial.finished_at - trial.started_at).total_seconds() * 0.99
    assert search_cost(search=search)["gpu_hours"] == pytest.approx(trial.gpu_seconds / 3600)


@pytest.mark.django_db
def test_the_trial_and_transfer_pages_show_their_gpu_time(client, user, make_search, make_trial):
    from webapp.transfers.models import Transfer

    search = make_search()
    trial = make_trial(search, 0, started_at=_at(0), finished_at=_at(200), gpu_seconds=250.0, device="cpu",
                       attempts=2)
    client.force_login(user)
    html = client.get(f"/trials/{trial.pk}/").content.decode()
    assert re.search(r'id="trial-gpu-time">4 min 10 s on cpu <span class="muted">\(every attempt\)', html)
    fresh = make_trial(search, 1)
    assert re.search(r'id="trial-gpu-time">—<', client.get(f"/trials/{fresh.pk}/").content.decode())

    transfer = Transfer.objects.create(team=search.team, owner=user, cell=trial.cell, source_trial=trial,
                                       genotype=trial.genotype, cell_hash=trial.cell_hash, dataset="digits",
                                       config={}, gpu_seconds=42.0)
    html = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert re.search(r'id="transfer-gpu-time">42\.0 s on cpu<', html)
