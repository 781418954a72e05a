"""Workers and trial logs (issue 18, "Logs and workers"): the services and selectors, the
workers page and API (another team's trial is neither linked nor named), the trial page's
worker log, and the capture on a real Celery worker."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import WorkerProcess, wait_until, worker_env
from webapp.trials.models import Trial
from webapp.workers import services
from webapp.workers.gpu import parse_inventory
from webapp.workers.models import TRIAL_LOG_MAX_CHARS, TrialLog, Worker
from webapp.workers.selectors import worker_rows_for_user, worker_status


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def worker(db):
    return services.worker_register(name="gpu-1@host-a", host="host-a", queues="gpu", gpu_name="NVIDIA H100",
                                    gpu_memory_mb=81559)


# -- services and selectors -----------------------------------------------------------------------


@pytest.mark.django_db
def test_status_follows_the_heartbeat_and_the_task(worker, make_search, make_trial, queued_steps, settings):
    trial = make_trial(make_search(), 0, status=Trial.Status.RUNNING)
    assert worker_status(worker=worker) == "idle"
    services.worker_task_started(name=worker.name, trial_id=trial.pk)
    worker.refresh_from_db()
    assert worker.current_trial_id == trial.pk and worker_status(worker=worker) == "busy"

    later = worker.heartbeat_at + timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1)
    assert worker_status(worker=worker, now=later) == "lost"
    services.worker_beat(name=worker.name)
    worker.refresh_from_db()
    assert worker_status(worker=worker, now=worker.heartbeat_at + timedelta(seconds=1)) == "busy"

    services.worker_task_ended(name=worker.name, trial_done=True)
    services.worker_task_started(name=worker.name, trial_id=trial.pk)
    services.worker_task_ended(name=worker.name, trial_done=False)  # a duplicate message: nothing trained
    worker.refresh_from_db()
    assert worker.trials_done == 1 and worker.current_trial_id is None and worker_status(worker=worker) == "idle"

    services.worker_stop(name=worker.name)
    worker.refresh_from_db()
    assert worker_status(worker=worker) == "stopped"
    again = services.worker_register(name=worker.name, host="host-a")
    assert worker_status(worker=again) == "idle" and again.trials_done == 1


@pytest.mark.django_db
def test_a_task_on_an_unregistered_worker_or_a_vanished_trial(db):
    services.worker_task_started(name="solo@x", host="x", trial_id=999_999)
    worker = Worker.objects.get(name="solo@x")
    assert worker.host == "x" and worker.current_trial_id is None
    assert services.trial_log_save(trial_id=999_999, attempt=1, worker="solo@x", text="hi") is None


@pytest.mark.django_db
def test_a_trial_log_keeps_its_tail(make_search, make_trial, queued_steps):
    trial = make_trial(make_search(), 0)
    lines = "\n".join(f"line {i}" for i in range(20_000)) + "\nTraceback: the end\n"
    log = services.trial_log_save(trial_id=trial.pk, attempt=1, worker="w", text=lines)
    assert log.truncated and len(log.text) <= TRIAL_LOG_MAX_CHARS
    assert log.text.startswith("line ") and log.text.endswith("Traceback: the end\n")
    services.trial_log_save(trial_id=trial.pk, attempt=1, worker="w", text="short")
    services.trial_log_save(trial_id=trial.pk, attempt=2, worker="w", text="second")
    assert list(TrialLog.objects.filter(trial=trial).values_list("attempt", "text", "truncated")) == [
        (1, "short", False), (2, "second", False)]


def test_nvidia_smi_output_is_read():
    assert parse_inventory("NVIDIA H100 80GB HBM3, 81559\n") == ("NVIDIA H100 80GB HBM3", 81559)
    assert parse_inventory("Tesla T4, 15360 MiB\nTesla T4, 15360 MiB\n") == ("Tesla T4", 15360)
    assert parse_inventory("") is None


@pytest.mark.django_db
def test_rows_name_only_the_users_teams_trials(worker, user, other_user, make_search, make_trial, queued_steps):
    trial = make_trial(make_search(name="secret-of-a"), 0, status=Trial.Status.RUNNING)
    services.worker_task_started(name=worker.name, trial_id=trial.pk)
    [mine] = worker_rows_for_user(user=user)
    [theirs] = worker_rows_for_user(user=other_user)
    assert mine.trial == trial and not mine.other_team and mine.status == "busy"
    assert theirs.trial is None and theirs.other_team and theirs.status == "busy"


@pytest.mark.django_db
def test_a_worker_on_a_supernet_is_busy_and_names_its_search_to_its_team(worker, user, other_user, make_search,
                                                                         queued_steps):
    from webapp.searches.models import OneShotRun
    from webapp.workers.signals import ONESHOT_TASK, on_task_postrun, on_task_prerun

    search = make_search(name="secret-of-a")
    run = OneShotRun.objects.create(search=search, config={}, status=OneShotRun.Status.RUNNING)
    task = type("Task", (), {"name": ONESHOT_TASK, "request": type("Request", (), {"hostname": worker.name})()})()
    on_task_prerun(task_id="t1", task=task, args=(run.pk,), kwargs={})
    [mine] = worker_rows_for_user(user=user)
    [theirs] = worker_rows_for_user(user=other_user)
    assert mine.oneshot == run and not mine.other_team and mine.status == "busy"
    assert theirs.oneshot is None and theirs.other_team and theirs.status == "busy"
    page = _client(user).get(reverse("workers:list")).content.decode()
    assert reverse("searches:detail", args=[search.pk]) in page and "supernet" in page
    api = APIClient()
    api.force_authenticate(user)
    row = next(r for r in api.get(reverse("api:worker-list")).json()["results"] if r["name"] == worker.name)
    assert row["current_oneshot_search"] == search.pk and row["status"] == "busy"
    on_task_postrun(task_id="t1", task=task, retval="finished")
    [mine] = worker_rows_for_user(user=user)
    assert mine.oneshot is None and mine.status == "idle"


# -- pages and API ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_workers_page_and_api(worker, user, other_user, make_search, make_trial, queued_steps):
    trial = make_trial(make_search(name="secret-of-a"), 0, status=Trial.Status.RUNNING)
    services.worker_task_started(name=worker.name, trial_id=trial.pk)
    Worker.objects.create(name="old@host-b", host="host-b", heartbeat_at=timezone.now() - timedelta(hours=1))

    page = _client(user).get(reverse("workers:list")).content.decode()
    assert "gpu-1@host-a" in page and "NVIDIA H100" in page and "81559 MiB" in page and "host-b" in page
    assert reverse("trials:detail", args=[trial.pk]) in page and "secret-of-a" in page
    assert ">busy<" in page and ">lost<" in page
    assert 'href="/workers/"' in _client(user).get(reverse("searches:list")).content.decode()  # the nav

    page = _client(other_user).get(reverse("workers:list")).content.decode()
    assert "gpu-1@host-a" in page and "another team's work" in page
    assert reverse("trials:detail", args=[trial.pk]) not in page and "secret-of-a" not in page

    api = APIClient()
    api.force_authenticate(other_user)
    body = api.get(reverse("api:worker-list")).json()
    assert body["count"] == 2
    row = next(r for r in body["results"] if r["name"] == "gpu-1@host-a")
    assert row["current_trial"] is None and row["other_team"] and row["status"] == "busy"
    assert row["gpu_name"] == "NVIDIA H100" and row["gpu_memory_mb"] == 81559 and row["host"] == "host-a"
    api.force_authenticate(user)
    row = next(r for r in api.get(reverse("api:worker-list")).json()["results"] if r["name"] == "gpu-1@host-a")
    assert row["current_trial"] == trial.pk and not row["other_team"]
    assert {r["status"] for r in api.get(reverse("api:worker-list")).json()["results"]} == {"busy", "lost"}

    assert APIClient().get(reverse("api:worker-list")).status_code in (401, 403)
    assert Client().get(reverse("workers:list")).status_code == 302


@pytest.mark.django_db
def test_the_trial_page_shows_its_worker_log(user, other_user, make_search, make_trial, queued_steps):
    trial = make_trial(make_search(), 0, status=Trial.Status.FAILED, reward=None,
                       error="trial 0 aborted: FileNotFoundError: no data")
    services.trial_log_save(trial_id=trial.pk, attempt=1, worker="gpu-1@host-a",
                            text="Traceback (most recent call last):\n<script>alert(1)</script>\nFileNotFoundError\n")
    page = _client(user).get(reverse("trials:detail", args=[trial.pk])).content.decode()
    assert "Worker log" in page and "Traceback (most recent call last):" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "FileNotFoundError: no data" in page and "hx-get" not in page.split('id="trial-log"')[1][:200]

    running = make_trial(trial.search, 1, status=Trial.Status.RUNNING, reward=None)
    part = _client(user).get(reverse("workers:trial-log", args=[running.pk])).content.decode()
    assert reverse("workers:trial-log", args=[running.pk]) in part and "No line yet" in part
    assert _client(other_user).get(reverse("workers:trial-log", args=[trial.pk])).status_code == 404


# -- a real worker ----------------------------------------------------------------------------------


@pytest.fixture
def worker_without_data(celery_broker, transactional_db, tmp_path, settings):
    """A real worker (the control and gpu queues) whose data root is empty: digits trains (it
    ships with scikit-learn), a CIFAR-10 trial fails for want of its dataset."""
    media, empty = tmp_path / "media", tmp_path / "no-data"
    media.mkdir()
    empty.mkdir()
    settings.MEDIA_ROOT = str(media)
    process = WorkerProcess(worker_env(broker_url=celery_broker, media=media, CELLSEARCH_DATA_ROOT=str(empty)),
                            tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _search(user, **options):
    from webapp.searches.services import search_create

    with transaction.atomic():
        return search_create(user=user, space="nasnet", strategy="random", budget=2, parallelism=1, seed=3,
                             **options)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_registers_beats_and_keeps_each_trials_log(worker_without_data, user, tiny_proxy, settings):
    from webapp.searches.models import Search

    logs = worker_without_data.log
    worker = wait_until(lambda: Worker.objects.first(), 30, "the worker to register", logs=logs)
    assert worker.host == socket.gethostname() and "gpu" in worker.queues and worker.stopped_at is None

    search = _search(user, dataset="digits", proxy=tiny_proxy)
    wait_until(lambda: Search.objects.get(pk=search.pk).status in Search.ENDED, 180, "the search to end", logs=logs)
    wait_until(lambda: Worker.objects.get(pk=worker.pk).trials_done >= 2, 30, "two trials done", logs=logs)
    for trial in search.trials.all():
        assert trial.status == Trial.Status.FINISHED, trial.error
        [log] = TrialLog.objects.filter(trial=trial)
        assert log.attempt == 1 and log.worker == worker.name
        assert log.text.startswith(f"--- attempt 1 on {worker.name}") and "epoch 1:" in log.text
        assert log.text.rstrip().endswith("--- ended: finished ---"), log.text

    # The heartbeat goes on while the worker is idle.
    first_beat = Worker.objects.get(pk=worker.pk).heartbeat_at
    wait_until(lambda: Worker.objects.get(pk=worker.pk).heartbeat_at > first_beat, 10, "a heartbeat", logs=logs)
    assert worker_status(worker=Worker.objects.get(pk=worker.pk)) == "idle"

    settings.CELLSEARCH_CHECK_DATA_FILES = False  # launch it anyway: what the worker does without the files
    failing = _search(user, dataset="cifar10", proxy=tiny_proxy)
    wait_until(lambda: Search.objects.get(pk=failing.pk).status in Search.ENDED, 120, "the search to fail",
               logs=logs)
    trial = failing.trials.get(index=0)
    assert trial.status == Trial.Status.FAILED
    log = wait_until(lambda: TrialLog.objects.filter(trial=trial).first(), 10, "the failed trial's log", logs=logs)
    assert "Traceback (most recent call last):" in log.text, log.text
    assert "aborts its search" in log.text and "--- ended: failed:" in log.text

    worker_without_data.stop()
    assert worker_status(worker=Worker.objects.get(pk=worker.pk)) == "stopped"


def test_a_worker_shares_the_cores_among_its_trainings_unless_told(settings, monkeypatch):
    from types import SimpleNamespace

    from searchcore.runner import threads_per_child
    from webapp.trials.services import WORKER_CONCURRENCY_VARIABLE, threads_per_training
    from webapp.workers.signals import on_worker_setup

    monkeypatch.setenv(WORKER_CONCURRENCY_VARIABLE, "1")  # restored after the test
    monkeypatch.setenv("OMP_NUM_THREADS", "64")  # what the environment says does not count
    settings.CELLSEARCH_THREADS_PER_CHILD = 0
    on_worker_setup(sender="gpu0@host", instance=SimpleNamespace(concurrency=2))
    assert threads_per_training() == threads_per_child(2) == max(1, len(os.sched_getaffinity(0)) // 2)
    settings.CELLSEARCH_THREADS_PER_CHILD = 3
    assert threads_per_training() == 3
