"""What a running search says (issue 19, part 2), through the pages and the API: a running
trial's elapsed time, epoch k/n, attempt and last progress; params and mult-adds from the
moment a trial is queued; the worker's stable `host/worker` name; a requeued trial's reason;
what pause does; the searches list's live strip of workers and queue; readable settings."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import celery
import pytest
from django.utils import timezone

from searchcore.profile import describe
from searchcore.spaces import parse_genotype
from searchcore.train import proxy_dataset, proxy_network_config, train_child
from webapp.searches.models import Search
from webapp.searches.services.control import search_advance
from webapp.searches.services.reconcile import searches_reconcile
from webapp.trials.models import Trial
from webapp.trials.services import search_proxy_config, trial_claim, trial_run
from webapp.workers.models import Worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def running_search(make_search):
    search = make_search()
    Search.objects.filter(pk=search.pk).update(status=Search.Status.RUNNING, started_at=timezone.now())
    search.refresh_from_db()
    return search


@pytest.fixture
def on_celery_node(monkeypatch):
    """Run as a task of the Celery node `name` on host `host` (CELLSEARCH_WORKER_HOST)."""

    def use(name: str, host: str) -> None:
        monkeypatch.setenv("CELLSEARCH_WORKER_HOST", host)
        monkeypatch.setattr(celery, "current_task", SimpleNamespace(request=SimpleNamespace(hostname=name)))

    return use


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


# -- a running trial: elapsed, epoch k/n, attempt, last progress ---------------------------------


def test_a_running_trial_says_how_far_it_is_on_the_search_page_and_its_own(signed_in, running_search, make_trial):
    now = timezone.now()
    trial = make_trial(running_search, 0, status=Trial.Status.RUNNING, worker="gpu-host:4242",
                       worker_label="gpu-host/gpu0", attempts=1, started_at=now - timedelta(seconds=95),
                       heartbeat_at=now - timedelta(seconds=7), epochs=[{"epoch": 1, "val_acc": 0.3}])
    epochs = running_search.proxy["epochs"]
    progress = re.compile(rf"epoch 1/{epochs} · attempt 1 · last progress (\d+\.\d) s ago")

    def says_how_far(text: str, *, elapsed_before: str = "") -> bool:
        """Epoch 1 of n, attempt 1, the last progress 7 s ago and training for 95 s (both seen a
        few seconds later on a busy machine)."""
        beat = progress.search(text)
        elapsed = re.search(rf"{elapsed_before}1 min (\d\d) s", text)
        return bool(beat and elapsed) and 7 <= float(beat[1]) < 20 and 35 <= int(elapsed[1]) < 48

    for url in (f"/searches/{running_search.pk}/", f"/searches/{running_search.pk}/live/"):
        text = page(signed_in, url)
        assert says_how_far(text), url
        assert ">gpu-host/gpu0<" in text, url  # the worker's name, not its process id
    detail = page(signed_in, f"/trials/{trial.pk}/")
    assert says_how_far(detail, elapsed_before="for ") and ">gpu-host/gpu0" in detail


def test_a_queued_trial_shows_no_running_line(signed_in, running_search, make_trial):
    trial = make_trial(running_search, 0, status=Trial.Status.PENDING)
    text = page(signed_in, f"/searches/{running_search.pk}/")
    assert "last progress" not in text and "requeued" not in text
    assert "last progress" not in page(signed_in, f"/trials/{trial.pk}/")


# -- params and mult-adds at issue ---------------------------------------------------------------


def test_the_control_step_counts_params_and_mult_adds_when_it_issues_a_trial(make_search, sent):
    search = make_search(budget=1, parallelism=1)
    search_advance(search_id=search.pk)
    trial = search.trials.get()
    assert trial.status == Trial.Status.PENDING
    config = search_proxy_config(search)
    data = proxy_dataset(config)
    network = proxy_network_config(config, num_classes=data.num_classes, in_channels=data.in_channels,
                                   image_size=data.image_size)
    expected = describe(parse_genotype(trial.genotype), network, data.image_size)
    assert (trial.params, trial.mult_adds) == (expected["params"], expected["mult_adds"]) != (None, None)


def test_a_queued_trial_shows_its_params_and_the_worker_keeps_them(make_search, sent, monkeypatch, signed_in):
    """The numbers at issue are on the page while the trial waits, and the worker's own count
    (authoritative once it finishes: train_child's, in process here) is the same."""
    import searchcore.runner

    search = make_search(budget=1, parallelism=1)
    search_advance(search_id=search.pk)
    trial = search.trials.get()
    assert trial.status == Trial.Status.PENDING and trial.params > 0
    text = page(signed_in, f"/trials/{trial.pk}/")
    assert f'title="{trial.params}"' in text and f'title="{trial.mult_adds}"' in text

    def in_process(genotype, config, *, on_epoch=None, **options):
        return train_child(parse_genotype(genotype), config, on_epoch=on_epoch)

    monkeypatch.setattr(searchcore.runner, "train_in_subprocess", in_process)
    issued = (trial.params, trial.mult_adds)
    finished = trial_run(trial_id=trial.pk)
    assert finished.status == Trial.Status.FINISHED, finished.error
    assert (finished.params, finished.mult_adds) == issued


def test_params_are_left_to_the_worker_when_the_images_are_not_on_the_control_host(make_search, sent, settings,
                                                                                  tmp_path):
    """An image folder's classes are its folders: without them here, the worker counts."""
    settings.CELLSEARCH_DATA_ROOT = str(tmp_path)  # no imagefolder folder in it
    search = make_search(budget=1, parallelism=1)
    Search.objects.filter(pk=search.pk).update(dataset="imagefolder")
    search_advance(search_id=search.pk)
    trial = search.trials.get()
    assert trial.status == Trial.Status.PENDING and trial.params is None and trial.mult_adds is None


# -- the worker's stable name --------------------------------------------------------------------


def test_a_trial_names_its_worker_host_slash_worker_the_same_after_a_restart(
        make_search, make_trial, sent, on_celery_node, monkeypatch, signed_in):
    search = make_search()
    trial = make_trial(search, 0, status=Trial.Status.PENDING)
    on_celery_node("gpu0@machine-1", "host-a")
    monkeypatch.setattr("os.getpid", lambda: 111)
    first = trial_claim(trial_id=trial.pk)
    assert first.worker == "host-a:111" and first.worker_label == "host-a/gpu0"

    # The worker restarts (a new process id) and takes the trial again once it went silent.
    Trial.objects.filter(pk=trial.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    monkeypatch.setattr("os.getpid", lambda: 222)
    again = trial_claim(trial_id=trial.pk)
    assert again.attempts == 2 and again.worker == "host-a:222" and again.worker_label == "host-a/gpu0"
    assert ">host-a/gpu0" in page(signed_in, f"/trials/{trial.pk}/")
    assert signed_in.get(f"/api/trials/{trial.pk}/").json()["worker_label"] == "host-a/gpu0"
    workers = signed_in.get(f"/api/searches/{search.pk}/").json()["workers"]
    assert [(w["worker_label"], w["attempt"]) for w in workers] == [("host-a/gpu0", 2)]


def test_the_workers_page_and_api_name_a_worker_host_slash_worker(signed_in):
    Worker.objects.create(name="gpu0@machine-1", host="host-a", queues="gpu")
    assert ">host-a/gpu0<" in page(signed_in, "/workers/")
    assert signed_in.get("/api/workers/").json()["results"][0]["label"] == "host-a/gpu0"


# -- a requeued trial ----------------------------------------------------------------------------


def test_a_trial_requeued_by_the_reconciler_says_why_and_which_attempt(signed_in, running_search, make_trial, sent):
    long_ago = timezone.now() - timedelta(hours=1)
    trial = make_trial(running_search, 0, status=Trial.Status.RUNNING, worker="gpu-host:4242",
                       worker_label="gpu-host/gpu0", attempts=1, started_at=long_ago, heartbeat_at=long_ago)
    assert searches_reconcile()["requeued"] == [trial.pk]
    trial.refresh_from_db()
    assert trial.status == Trial.Status.PENDING and trial.requeued
    reason = "requeued: its worker stopped beating in attempt 1 of 3 (the worker process died, or lost its " \
             "database), attempt 2"
    assert reason in page(signed_in, f"/searches/{running_search.pk}/")
    assert reason in page(signed_in, f"/trials/{trial.pk}/")
    assert signed_in.get(f"/api/trials/{trial.pk}/").json()["requeued"] is True


def test_a_trial_training_again_after_a_crash_says_so(signed_in, running_search, make_trial):
    trial = make_trial(running_search, 0, status=Trial.Status.RUNNING, attempts=2, started_at=timezone.now(),
                       heartbeat_at=timezone.now(), worker_label="gpu-host/gpu1",
                       error="training process crashed: signal 6 (SIGABRT) (attempt 1 of 3; queued again)")
    reason = "requeued: training process crashed: signal 6 (SIGABRT), attempt 2"
    assert reason in page(signed_in, f"/searches/{running_search.pk}/")
    assert reason in page(signed_in, f"/trials/{trial.pk}/")


# -- pause ---------------------------------------------------------------------------------------


def test_pause_says_what_happens_to_queued_and_training_trials(signed_in, running_search, make_trial, sent):
    queued = make_trial(running_search, 0, status=Trial.Status.PENDING)
    effect = "Trials already queued or training still train, and the strategy is told their results; " \
             "no new trial is issued until it is resumed."
    text = page(signed_in, f"/searches/{running_search.pk}/")
    assert f'data-confirm="Pause this search? {effect}"' in text

    response = signed_in.post(f"/searches/{running_search.pk}/pause/", follow=True)
    assert f"Search paused. {effect}" in response.content.decode()
    running_search.refresh_from_db()
    assert running_search.status == Search.Status.PAUSED
    # What the message says: the queued trial is still claimed, and a step issues nothing new.
    issued = running_search.trials_issued
    search_advance(search_id=running_search.pk)
    running_search.refresh_from_db()
    assert running_search.trials_issued == issued and running_search.trials.count() == 1
    assert trial_claim(trial_id=queued.pk) is not None


# -- the searches list: live, with the queue's health --------------------------------------------


def test_the_searches_list_polls_while_a_search_is_active_and_shows_workers_and_queue(
        signed_in, running_search, make_trial, other_user, make_cell):
    now = timezone.now()
    make_trial(running_search, 0, status=Trial.Status.PENDING)
    make_trial(running_search, 1, status=Trial.Status.PENDING)
    busy = make_trial(running_search, 2, status=Trial.Status.RUNNING)
    Worker.objects.create(name="gpu0@a", host="a", current_trial=busy)
    Worker.objects.create(name="gpu1@a", host="a")
    Worker.objects.create(name="gpu2@a", host="a", heartbeat_at=now - timedelta(hours=1))
    from webapp.searches.services import search_create

    theirs = search_create(user=other_user, space="nasnet", strategy="random", dataset="digits", budget=2,
                           parallelism=1, seed=0, proxy=dict(running_search.proxy))
    Trial.objects.create(search=theirs, index=0, cell=make_cell(), genotype={}, cell_hash="x",
                         status=Trial.Status.PENDING)  # another team's: not counted

    for url in ("/", "/searches/live/"):
        text = page(signed_in, url)
        assert 'hx-get="/searches/live/' in text, url
        assert re.search(r'id="workers-busy"><strong>1</strong> busy', text)
        assert re.search(r'id="workers-idle"><strong>1</strong> idle', text)
        assert re.search(r'id="workers-lost" class="text-danger"><strong>1</strong> lost', text)
        assert re.search(r'id="queue-pending"><strong>2</strong> trials', text)
        assert f"/searches/{running_search.pk}/" in text

    Search.objects.filter(pk=running_search.pk).update(status=Search.Status.FINISHED)
    ended = page(signed_in, "/searches/live/")
    assert "hx-get" not in ended and re.search(r'id="queue-pending"><strong>0</strong> trials', ended)


# -- readable settings ---------------------------------------------------------------------------


def test_the_settings_card_reads_as_key_value_rows(signed_in, make_search):
    search = make_search()
    Search.objects.filter(pk=search.pk).update(strategy_options={"batch_size": 5, "nested": {"a_b": True}})
    text = page(signed_in, f"/searches/{search.pk}/")
    assert "· proxy 1@48, 1 epochs, batch 128 ·" in text  # the header's meta line
    card = text[text.index('id="search-settings"'):]
    assert "nesterov=False" not in card and "None" not in card and "{'" not in card
    assert "<dt>nesterov</dt><dd><div>no</div></dd>" in card
    assert "<dt>augment</dt><dd><div>yes</div></dd>" in card
    assert "<dt>data root</dt><dd><div>default</div></dd>" in card
    assert "<dt>batch size</dt><dd><div>5</div></dd>" in card
    assert "<dt>nested</dt><dd><div>a b = yes</div></dd>" in card
    assert "<dt>dataset options</dt><dd><div>none</div></dd>" in card
