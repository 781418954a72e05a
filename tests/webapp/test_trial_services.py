"""trials.services.trial_run: claim, train (for real, a tiny child on digits), record, fail, stop.

Most tests put an in-process stand-in where the runner's child process would train, to script
epochs, beats and errors; tests/faults drills the real process failures. They commit
(transaction=True), as a worker does.
"""

import io
import time

import pytest
import torch
from django.core.files.storage import default_storage
from django.utils import timezone

from searchcore.results import EpochMetrics, TrainResult
from searchcore.runner import ChildError, TrainingProcessError, TrialFailedError
from webapp import dispatch
from webapp.celery import app as celery_app
from webapp.cells.models import CellResult
from webapp.searches.models import Search
from webapp.searches.services import search_cancel, search_pause
from webapp.searches.services.control import search_advance
from webapp.searches.tasks import fail_search
from webapp.trials.models import Trial
from webapp.trials.services import trial_claim, trial_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quiet_queue(monkeypatch):
    """Record the control steps trial_run queues (search ids) instead of sending them, run the
    searches a trial aborts as the control worker would, and drop the trials."""
    queued = []

    def send_task(name, args, **options):
        if name == dispatch.ADVANCE_SEARCH:
            queued.append(args[0])
        elif name == dispatch.FAIL_SEARCH:
            fail_search(*args)

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return queued


@pytest.fixture
def pending_trial(make_search, quiet_queue):
    def make(**overrides):
        search = make_search(**{"budget": 2, "parallelism": 1, **overrides})
        search_advance(search_id=search.pk)
        quiet_queue.clear()
        return search.trials.get(index=0)

    return make


def fake_train(epochs: int, between=None):
    """A stand-in for the runner's training process: `epochs` epochs through on_epoch (stopping
    when told), with `between(epoch, on_beat)` before each."""

    def train(genotype, config, *, on_epoch=None, on_beat=None, checkpoint_path=None, num_threads=None, policy=None):
        history = []
        for epoch in range(1, epochs + 1):
            if between is not None:
                between(epoch, on_beat)
            metrics = EpochMetrics(epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.1 * epoch,
                                   lr=0.05, seconds=0.01, images_per_second=100.0)
            history.append(metrics)
            if on_epoch(metrics) is False:
                break
        return TrainResult(reward=history[-1].val_acc, val_acc=history[-1].val_acc, best_val_acc=0.5, test_acc=None,
                           params=10, mult_adds=20, epochs=history, stopped=len(history) < epochs, seconds=0.1)

    return train


@pytest.fixture
def stand_in(monkeypatch):
    """Train with `fake` in this process instead of a child process."""
    import searchcore.runner

    def use(fake) -> None:
        monkeypatch.setattr(searchcore.runner, "train_in_subprocess", fake)

    return use


def test_trains_a_real_child_and_records_everything(pending_trial, settings, tmp_path, quiet_queue):
    settings.MEDIA_ROOT = str(tmp_path)
    trial = pending_trial(keep_checkpoints=True)
    before = timezone.now()

    result = trial_run(trial_id=trial.pk)

    trial.refresh_from_db()
    assert result is not None and result.pk == trial.pk
    assert trial.status == Trial.Status.FINISHED, trial.error
    assert 0 <= trial.reward <= 1 and trial.val_acc == trial.reward
    assert trial.params > 0 and trial.mult_adds > 0
    assert [e["epoch"] for e in trial.epochs] == [1] and trial.epochs[0]["val_acc"] == trial.reward
    assert trial.worker and trial.attempts == 1 and trial.error == ""
    assert before <= trial.started_at <= trial.heartbeat_at <= trial.finished_at
    assert not trial.told  # told by the next control step
    assert quiet_queue == [trial.search_id]

    assert trial.checkpoint.name == f"checkpoints/search_{trial.search_id}/trial_0.attempt1.pt"
    with default_storage.open(trial.checkpoint.name) as f:
        checkpoint = torch.load(io.BytesIO(f.read()), weights_only=True)
    assert checkpoint["genotype"] == trial.genotype and checkpoint["epoch"] == 1

    cell_result = CellResult.objects.get(cell=trial.cell)
    assert (cell_result.best_trial_id, cell_result.best_reward, cell_result.trials_count) == (trial.pk, trial.reward, 1)
    assert cell_result.team_id == trial.search.team_id and cell_result.dataset == "digits"
    assert cell_result.proxy_key == trial.search.proxy_key

    # Running it again (a duplicate message) trains nothing and changes nothing.
    finished = Trial.objects.values().get(pk=trial.pk)
    assert trial_run(trial_id=trial.pk) is None
    assert Trial.objects.values().get(pk=trial.pk) == finished
    assert CellResult.objects.get(cell=trial.cell).trials_count == 1
    assert quiet_queue == [trial.search_id]


def test_no_checkpoint_unless_asked(pending_trial, stand_in):
    sinks = []

    def spy(*args, **kwargs):
        sinks.append(kwargs["checkpoint_path"])
        return fake_train(1)(*args, **kwargs)

    stand_in(spy)
    trial = pending_trial()
    assert trial_run(trial_id=trial.pk).status == Trial.Status.FINISHED
    assert sinks == [None]
    assert not Trial.objects.get(pk=trial.pk).checkpoint


@pytest.mark.parametrize(("error", "message"), [
    (TrialFailedError("TrainingDivergedError: child training diverged: the loss became nan in epoch 1"),
     "TrainingDivergedError: child training diverged: the loss became nan in epoch 1"),
    (TrialFailedError("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
     "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
])
def test_the_cells_own_failure_fails_the_trial_and_the_search_goes_on(pending_trial, stand_in, quiet_queue, error,
                                                                       message):
    stand_in(failing_after_an_epoch(error))
    trial = pending_trial()
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.FAILED
    assert trial.error == message
    assert len(trial.epochs) == 1 and trial.finished_at is not None and trial.reward is None
    assert not CellResult.objects.exists()
    assert quiet_queue == [trial.search_id]

    search_advance(search_id=trial.search_id)
    search = Search.objects.get(pk=trial.search_id)
    assert search.status == Search.Status.RUNNING
    assert search.trials.get(index=0).told
    assert search.trials.get(index=1).status == Trial.Status.PENDING


@pytest.mark.parametrize(("error", "message"), [
    (ChildError("FileNotFoundError: no CIFAR-10 batches in /data/cifar10"),
     "FileNotFoundError: no CIFAR-10 batches in /data/cifar10"),
    (ChildError("KeyError: 'a bug'"), "KeyError: 'a bug'"),
    (KeyError("a bug in the worker"), "KeyError: 'a bug in the worker'"),
])
def test_any_other_error_fails_the_trial_and_aborts_the_search(pending_trial, stand_in, quiet_queue, error, message):
    stand_in(failing_after_an_epoch(error))
    trial = pending_trial()
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.FAILED and trial.error == message and len(trial.epochs) == 1
    search = Search.objects.get(pk=trial.search_id)
    assert search.status == Search.Status.FAILED and search.error == f"trial 0 aborted the search: {message}"
    assert quiet_queue == [trial.search_id]
    search_advance(search_id=search.pk)  # the control step finds the search ended: no more trials
    assert list(search.trials.values_list("index", flat=True)) == [0]


def failing_after_an_epoch(error):
    def broken(*args, on_epoch, **kwargs):
        on_epoch(EpochMetrics(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.2, lr=0.05,
                              seconds=0.01, images_per_second=100.0))
        raise error

    return broken


def test_a_cancelled_search_stops_its_trial_at_the_next_epoch(pending_trial, stand_in):
    trial = pending_trial()
    epochs_started = []

    def between(epoch, on_beat):
        epochs_started.append(epoch)
        if epoch == 2:
            search_cancel(search=Search.objects.get(pk=trial.search_id))

    stand_in(fake_train(5, between))
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert epochs_started == [1, 2]
    assert trial.status == Trial.Status.CANCELLED and trial.reward is None
    assert not CellResult.objects.exists()


def test_a_paused_search_lets_its_trial_finish(pending_trial, stand_in):
    trial = pending_trial()

    def between(epoch, on_beat):
        if epoch == 2:
            search_pause(search=Search.objects.get(pk=trial.search_id))

    stand_in(fake_train(4, between))
    assert trial_run(trial_id=trial.pk).status == Trial.Status.FINISHED
    assert len(Trial.objects.get(pk=trial.pk).epochs) == 4


def test_the_heartbeat_follows_the_trainings_progress(pending_trial, stand_in, settings):
    from searchcore.runner import Progress

    settings.CELLSEARCH_HEARTBEAT_SECONDS = 0.1
    trial = pending_trial()
    beats = []

    def progress_then_silence(epoch, on_beat):
        for step in range(1, 4):
            time.sleep(0.2)
            on_beat(Progress(epochs=0, steps=step))
            beats.append(Trial.objects.values_list("heartbeat_at", flat=True).get(pk=trial.pk))
        time.sleep(0.5)  # no progress: no beat, however long (the runner kills a training silent too long)
        beats.append(Trial.objects.values_list("heartbeat_at", flat=True).get(pk=trial.pk))

    stand_in(fake_train(1, progress_then_silence))
    trial_run(trial_id=trial.pk)
    started = Trial.objects.get(pk=trial.pk).started_at
    assert beats[0] > started and beats[:3] == sorted(set(beats[:3]))  # one beat per sign of progress
    assert beats[3] == beats[2]


def test_a_lost_training_process_is_queued_again_then_fails_with_its_reason(pending_trial, stand_in, settings,
                                                                            monkeypatch):
    settings.CELLSEARCH_MAX_ATTEMPTS = 2
    trial = pending_trial()
    sent = []

    def send_task(name, args, task_id=None):
        if name == dispatch.TRAIN_TRIAL:
            sent.append((args[0], task_id))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    crash = "training process crashed: signal 6 (SIGABRT): double free or corruption (!prev)"

    errors_seen = []

    def crashing(*args, **kwargs):
        errors_seen.append(Trial.objects.values_list("error", flat=True).get(pk=trial.pk))
        raise TrainingProcessError(crash)

    stand_in(crashing)
    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.PENDING and trial.attempts == 1 and trial.worker == ""
    assert trial.error == f"{crash} (attempt 1 of 2; queued again)"
    assert sent == [(trial.pk, trial.task_id)]

    trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    assert errors_seen == ["", f"{crash} (attempt 1 of 2; queued again)"]  # a retry shows why the last one ended
    assert trial.status == Trial.Status.FAILED and trial.attempts == 2
    assert trial.error == f"{crash} (attempt 2 of 2)"
    assert len(sent) == 1 and trial.reward is None

    search_advance(search_id=trial.search_id)  # told as failed; the search goes on
    search = Search.objects.get(pk=trial.search_id)
    assert search.status == Search.Status.RUNNING and search.trials.get(index=0).told
    assert search.trials.get(index=1).status == Trial.Status.PENDING


def test_claims_are_exclusive(pending_trial, settings):
    trial = pending_trial()
    claimed = trial_claim(trial_id=trial.pk)
    assert claimed is not None and claimed.status == Trial.Status.RUNNING and claimed.attempts == 1
    assert trial_claim(trial_id=trial.pk) is None  # running, with a fresh heartbeat

    # A worker silent for longer than the timeout is presumed dead: its trial can be claimed again,
    # and the dead worker's late writes no longer land.
    stale = timezone.now() - timezone.timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1)
    Trial.objects.filter(pk=trial.pk).update(heartbeat_at=stale)
    again = trial_claim(trial_id=trial.pk)
    assert again is not None and again.attempts == 2
    from webapp.trials.services import _ours

    assert not _ours(claimed).update(reward=0.99)
    assert _ours(again).update(reward=0.5)

    for status in (Trial.Status.FINISHED, Trial.Status.FAILED, Trial.Status.CANCELLED):
        Trial.objects.filter(pk=trial.pk).update(status=status, heartbeat_at=stale)
        assert trial_claim(trial_id=trial.pk) is None


def test_trials_of_a_cancelled_search_are_not_claimed(pending_trial):
    trial = pending_trial()
    Search.objects.filter(pk=trial.search_id).update(status=Search.Status.CANCELLED)
    assert trial_run(trial_id=trial.pk) is None
    assert Trial.objects.get(pk=trial.pk).status == Trial.Status.PENDING


def test_best_result_per_cell_and_team_keeps_the_best_and_counts(user, make_search):
    from webapp.cells.services import cell_result_update

    searches = [make_search(budget=1, parallelism=1) for _ in range(3)]
    for search, reward in zip(searches, (0.4, 0.7, 0.5)):
        search_advance(search_id=search.pk)
        trial = search.trials.get()
        Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.FINISHED, reward=reward, params=5,
                                                 reused_from=None)
        # The three searches ask the same cell; only the first one's trial is not reused, so
        # force each to count, as trained trials would.
        cell_result_update(trial=Trial.objects.select_related("search").get(pk=trial.pk))
    result = CellResult.objects.get()
    assert result.best_reward == 0.7 and result.trials_count == 3
    assert result.best_trial.search_id == searches[1].pk


def test_a_late_attempt_never_touches_the_live_checkpoint(pending_trial, settings, tmp_path,
                                                          django_capture_on_commit_callbacks):
    from django.core.files.base import ContentFile

    from webapp.trials.services import _checkpoint_name, _trial_finish

    settings.MEDIA_ROOT = str(tmp_path)
    trial = pending_trial(keep_checkpoints=True)
    first = trial_claim(trial_id=trial.pk)
    stale = timezone.now() - timezone.timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1)
    Trial.objects.filter(pk=trial.pk).update(heartbeat_at=stale)
    second = trial_claim(trial_id=trial.pk)  # the first worker was presumed dead
    result = fake_train(1)(None, None, on_epoch=lambda m: True)

    live = default_storage.save(_checkpoint_name(second), ContentFile(b"second attempt"))
    _trial_finish(trial=second, result=result, checkpoint=live)
    late = default_storage.save(_checkpoint_name(first), ContentFile(b"first attempt, woke up late"))
    with django_capture_on_commit_callbacks(execute=True):
        _trial_finish(trial=first, result=result, checkpoint=late)

    assert late != live
    assert Trial.objects.get(pk=trial.pk).checkpoint.name == live
    assert default_storage.exists(live) and not default_storage.exists(late)
