"""Writes for trials: a gpu worker claims a trial, trains it, and reports every epoch.

`trial_run` is what the `train_trial` task runs. It trains only a trial it has claimed
(pending → running in one UPDATE, or running with a heartbeat older than
CELLSEARCH_HEARTBEAT_TIMEOUT: its worker died), so a duplicate message or a second run never
trains a finished trial again. Each claim increments `attempts`, and every later write is
guarded by it: a worker presumed dead that wakes up cannot overwrite a newer attempt.

The training itself runs in a child process (searchcore.runner), so a crash or a hang in
native code ends one attempt, never the worker. How an attempt ends is judged by the runner's
one policy (`run_trial`), the CLI loop's too:

- the cell's own failure (a diverged loss, out of memory) fails the trial; the search goes on;
- a lost process (crashed, killed or hung: the machine's fault) puts the trial back in the
  queue with the reason, up to CELLSEARCH_MAX_ATTEMPTS attempts, and only then fails it;
- a trained trial whose checkpoint cannot be stored (a full disk) fails; the search goes on;
- anything else (bad settings, a dataset missing on the workers, a bug) would fail every trial
  alike: it fails the trial and, naming it, the search — the run is aborted, as the CLI's stops.

Cost: an attempt's device-seconds — wall-clock seconds × the devices it uses (DEVICES_PER_RUN) —
are added to `gpu_seconds` as it goes: at each heartbeat, the seconds since the last one (or the
claim), and at its end (finished, failed, lost, stopped) the rest; the end records the device
(`run_device`). So an attempt whose worker died has cost up to its last heartbeat, whoever
queues the trial again, and lost and failed attempts count like the others.

This worker never imports torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from webapp import dispatch
from webapp.datasets import dataset_root
from webapp.storage import StorageWriteError, store_file
from webapp.trials.models import DEVICES_PER_RUN, Trial
from webapp.trials.naming import current_worker_label, worker_host

if TYPE_CHECKING:  # a trial reaches its search through its foreign key; trials never import the searches app
    from webapp.searches.models import Search

logger = logging.getLogger(__name__)

#: Where a worker notes its pool's concurrency for its trainings (set at start, inherited by
#: the pool's processes).
WORKER_CONCURRENCY_VARIABLE = "CELLSEARCH_WORKER_CONCURRENCY"


def worker_name() -> str:
    """`host:pid`, the process that holds a claim (the host as naming.worker_host); the pages
    show the worker's stable `host/worker` instead (Trial.worker_label)."""
    return f"{worker_host()}:{os.getpid()}"


def threads_per_training() -> int:
    """Threads each training of this worker uses: CELLSEARCH_THREADS_PER_CHILD when set, else
    this machine's cores shared among the worker's concurrent trainings (its pool's
    concurrency, which the worker notes at start: webapp.workers.signals), whatever
    OMP_NUM_THREADS says; torch would otherwise give every training all the cores."""
    from searchcore.runner import threads_per_child

    if settings.CELLSEARCH_THREADS_PER_CHILD:
        return settings.CELLSEARCH_THREADS_PER_CHILD
    return threads_per_child(int(os.environ.get(WORKER_CONCURRENCY_VARIABLE, "1")))


def worker_device(config) -> str:
    """The accelerator this worker trains on, asked torch-free: the first GPU nvidia-smi lists
    among CUDA_VISIBLE_DEVICES, unless the config says cpu; "" when there is none (a CPU)."""
    if config.device == "cpu" or not shutil.which("nvidia-smi"):
        return ""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    index = config.device.partition(":")[2] or "0"
    if visible is not None:
        ids = [item.strip() for item in visible.split(",") if item.strip()]
        if not ids or ids[0] in ("-1", ""):
            return ""
        index = ids[int(index)] if index.isdigit() and int(index) < len(ids) else ids[0]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", index],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


@lru_cache(maxsize=16)
def run_device(device_setting: str = "auto") -> str:
    """What a run with this device setting ("auto", "cpu", "cuda:N") trains on here: the GPU's
    name, or "cpu". Asked once per setting and process (nvidia-smi)."""
    return worker_device(type("DeviceSetting", (), {"device": device_setting or "auto"})()) or "cpu"


def attempt_seconds(started_at: datetime | None, ended_at: datetime | None = None) -> float:
    """Device-seconds of one attempt: wall-clock seconds from its claim to its end (now) × devices."""
    if started_at is None:
        return 0.0
    return max(0.0, ((ended_at or timezone.now()) - started_at).total_seconds()) * DEVICES_PER_RUN


def gpu_charge(row, *, start: datetime | None, now: datetime | None = None) -> dict:
    """Update fields adding the device-seconds of a trial's or transfer's current attempt not yet
    added: since its last recorded heartbeat (`row.charged_until`, which the worker sets once
    that update succeeded), or else since `start`, its claim."""
    since = getattr(row, "charged_until", None) or start
    return {"gpu_seconds": F("gpu_seconds") + attempt_seconds(since, now)}


def _spent(trial: Trial) -> dict:
    """Update fields ending an attempt: the rest of its device-seconds, and its device."""
    proxy = trial.search.proxy if isinstance(trial.search.proxy, dict) else {}
    return {**gpu_charge(trial, start=trial.started_at), "device": run_device(str(proxy.get("device") or "auto"))}


def trial_claim(*, trial_id: int) -> Trial | None:
    """Take the trial for this process, or None when it is not ours to train (finished, failed,
    cancelled, its search stopped, or running with a fresh heartbeat elsewhere).

    The row is locked and checked in Python: a conditional UPDATE whose guard sits in a
    subquery (as Django writes one that joins the search) is not re-checked by PostgreSQL
    after a concurrent claim commits, so two workers could both win.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        trial = _with_search(Trial.objects.select_for_update(of=("self",))).filter(pk=trial_id).first()
        if trial is None or trial.search.status in trial.search.ENDED:
            return None
        stale = trial.status == Trial.Status.RUNNING and trial.heartbeat_at is not None \
            and trial.heartbeat_at < stale_before
        if trial.status != Trial.Status.PENDING and not stale:
            return None
        trial.status, trial.worker, trial.started_at, trial.heartbeat_at = Trial.Status.RUNNING, worker_name(), now, now
        trial.worker_label = current_worker_label()
        trial.attempts += 1
        trial.epochs = []  # the error stays: why the attempt before this one ended, until this one ends
        trial.save(update_fields=["status", "worker", "worker_label", "started_at", "heartbeat_at", "attempts",
                                  "epochs"])
    return trial


def _with_search(trials):
    """`trials` with their search, less the strategy's state: megabytes for a controller, which
    a worker never reads (it cost a PPO search's every claim 30 ms)."""
    return trials.select_related("search").defer("search__strategy_state", "search__forked_state")


def _ours(trial: Trial):
    """The trial's row while this attempt still owns it."""
    return Trial.objects.filter(pk=trial.pk, status=Trial.Status.RUNNING, attempts=trial.attempts)


def search_proxy_config(search: Search):
    """The search's ProxyConfig, with the server's data folder for datasets that need files."""
    config = search.proxy_config
    if config.data_root is None:
        config = replace(config, data_root=dataset_root(config.dataset))
    return config


def _checkpoint_name(trial: Trial) -> str:
    """One file per attempt, so an attempt that lost its claim never touches the live one."""
    return f"checkpoints/search_{trial.search_id}/trial_{trial.index}.attempt{trial.attempts}.pt"


def trial_run(*, trial_id: int) -> Trial | None:
    """Claim and train a trial, recording each epoch; returns the trial, or None when there was
    nothing to train. An error in training fails the trial, a lost training process queues it
    again (see the module docstring); the search goes on. Queues the search's next control
    step in every case but the no-op."""
    trial = trial_claim(trial_id=trial_id)
    if trial is None:
        logger.info("trial %s: not claimable here; nothing to do", trial_id)
        return None
    try:
        _train(trial)
    finally:
        with transaction.atomic():
            # The next trial first (asked ahead of need), so that no worker waits for the step.
            ready_trials_queue(search_id=trial.search_id)
            dispatch.queue_advance_search(search_id=trial.search_id)
    trial.refresh_from_db()
    return trial


def ready_trials_queue(*, search_id: int) -> list[tuple[int, str]]:
    """Queue the search's ready trials (asked ahead of need), oldest first, while fewer than its
    parallelism take a worker (pending or running); returns the (trial id, task id)s queued.

    A worker runs this the moment its trial ends, without the search's lock, so the next trial
    is in the gpu queue before the control step that tells the result has even started (the
    step queues them too when it finds room: a raised parallelism, a worker that died before
    this). Each trial is taken by one conditional UPDATE, so two callers never queue it twice."""
    parallelism = Trial.objects.filter(search_id=search_id).values_list("search__parallelism", flat=True).first()
    if parallelism is None:
        return []
    taken = Trial.objects.filter(search_id=search_id, status__in=Trial.TAKING_A_WORKER).count()
    ready = Trial.objects.filter(search_id=search_id, status=Trial.Status.READY).order_by("index")
    now = timezone.now()
    sends = []
    for trial_id in ready.values_list("pk", flat=True)[:max(0, parallelism - taken)]:
        task_id = dispatch.new_task_id()
        # heartbeat_at of a pending trial: when it was queued (the reconciler's clock).
        if Trial.objects.filter(pk=trial_id, status=Trial.Status.READY).update(
                status=Trial.Status.PENDING, task_id=task_id, heartbeat_at=now):
            sends.append((trial_id, task_id))
    dispatch.queue_train_trials(trials=sends)
    return sends


def runner_policy():
    """How long a silent training process may take before it counts as hung (settings)."""
    from searchcore.runner import RunnerPolicy

    return RunnerPolicy(
        stall_factor=settings.CELLSEARCH_STALL_FACTOR, min_stall_seconds=settings.CELLSEARCH_MIN_STALL_SECONDS,
        max_stall_seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT, startup_seconds=settings.CELLSEARCH_STARTUP_SECONDS,
    )


def _train(trial: Trial) -> None:
    """Train in a child process (searchcore.runner), which this worker kills when it hangs or
    its search is cancelled, and record the end as the runner's policy judges it (module
    docstring); the heartbeat follows the training loop's progress."""
    from searchcore import runner
    from searchcore.errors import SearchcoreError

    search = trial.search
    epochs: list[dict] = []
    last_beat = [timezone.now()]

    def still_wanted() -> bool:
        """Beat, adding the device-seconds since the last beat; False once the trial is no longer
        ours (cancelling a search cancels its trials)."""
        now = timezone.now()
        last_beat[0] = now
        try:
            ours = bool(_ours(trial).update(epochs=epochs, heartbeat_at=now,
                                            **gpu_charge(trial, start=trial.started_at, now=now)))
        except DatabaseError:  # a busy database: keep training, the next beat tries again
            logger.warning("trial %s: could not beat", trial.pk, exc_info=True)
            return True
        if ours:
            trial.charged_until = now
        return ours

    def on_beat(progress) -> bool:
        if (timezone.now() - last_beat[0]).total_seconds() < settings.CELLSEARCH_HEARTBEAT_SECONDS:
            return True
        return still_wanted()

    def on_epoch(metrics) -> bool:
        epochs.append(asdict(metrics))
        return still_wanted()

    with tempfile.TemporaryDirectory(prefix="cellsearch-trial-") as folder:
        checkpoint_path = os.path.join(folder, "checkpoint.pt") if search.keep_checkpoints else None
        try:
            outcome = runner.run_trial(
                trial.genotype, search_proxy_config(search), on_epoch=on_epoch, on_beat=on_beat,
                checkpoint_path=checkpoint_path, num_threads=threads_per_training(), policy=runner_policy(),
            )
        except SearchcoreError as exc:  # TrialAborted, or the search's settings no longer valid
            logger.error("trial %s (search %s) aborts its search: %s", trial.pk, search.pk, exc)
            with transaction.atomic():
                if _ours(trial).update(status=Trial.Status.FAILED, error=str(exc), finished_at=timezone.now(),
                                       epochs=epochs, **_spent(trial)):
                    dispatch.queue_fail_search(search_id=search.pk,
                                               error=f"trial {trial.index} aborted the search: {exc}")
            return
        if outcome.status == "stopped":
            logger.info("trial %s: stopped (its search was cancelled, or another worker took it)", trial.pk)
            _attempt_spent(trial)
            return
        if outcome.status == "lost":
            logger.warning("trial %s (search %s), attempt %s: %s", trial.pk, search.pk, trial.attempts,
                           outcome.message)
            _attempt_lost(trial=trial, reason=outcome.message, epochs=epochs)
            return
        if outcome.status == "failed":
            logger.warning("trial %s (search %s) failed: %s", trial.pk, search.pk, outcome.message)
            _ours(trial).update(status=Trial.Status.FAILED, error=outcome.message, finished_at=timezone.now(),
                                epochs=epochs, **_spent(trial))
            return
        checkpoint = ""
        if checkpoint_path is not None and os.path.exists(checkpoint_path) and _ours(trial).exists():
            try:
                checkpoint = store_file(name=_checkpoint_name(trial), path=checkpoint_path)
            except StorageWriteError as exc:  # a full disk: the trial fails, the search goes on
                logger.error("trial %s (search %s): %s", trial.pk, search.pk, exc)
                _ours(trial).update(status=Trial.Status.FAILED, finished_at=timezone.now(), epochs=epochs,
                                    error=f"it trained, but its checkpoint was not kept: {exc}", **_spent(trial))
                return
    _trial_finish(trial=trial, result=outcome.result, checkpoint=checkpoint)


def _attempt_spent(trial: Trial) -> None:
    """Add the rest of an attempt's cost when it ended without a write of its own: its search was
    cancelled (the row is no longer running). Nothing when another worker took it over (a newer
    attempt): it was presumed dead, and its cost counted up to its last heartbeat."""
    Trial.objects.filter(pk=trial.pk, attempts=trial.attempts).exclude(status=Trial.Status.RUNNING) \
        .update(**_spent(trial))


@transaction.atomic
def _attempt_lost(*, trial: Trial, reason: str, epochs: list[dict]) -> None:
    """The training process crashed or hung: not the cell's fault, so the trial goes back to
    the queue (any worker may take it) until CELLSEARCH_MAX_ATTEMPTS attempts have failed."""
    attempts, limit = trial.attempts, settings.CELLSEARCH_MAX_ATTEMPTS
    now = timezone.now()
    if attempts >= limit:
        _ours(trial).update(status=Trial.Status.FAILED, finished_at=now, epochs=epochs,
                            error=f"{reason} (attempt {attempts} of {limit})", **_spent(trial))
        return
    task_id = dispatch.new_task_id()
    # heartbeat_at of a pending trial: when it was queued (the reconciler's clock).
    if _ours(trial).update(status=Trial.Status.PENDING, worker="", task_id=task_id, heartbeat_at=now, epochs=[],
                           error=f"{reason} (attempt {attempts} of {limit}; queued again)", **_spent(trial)):
        dispatch.queue_train_trials(trials=[(trial.pk, task_id)])


@transaction.atomic
def _trial_finish(*, trial: Trial, result, checkpoint: str) -> None:
    from webapp.cells.services import cell_result_update

    now = timezone.now()
    done = _ours(trial).update(
        status=Trial.Status.FINISHED, reward=result.reward, val_acc=result.val_acc, params=result.params,
        mult_adds=result.mult_adds, epochs=[asdict(e) for e in result.epochs], finished_at=now,
        heartbeat_at=now, checkpoint=checkpoint, error="", **_spent(trial),
    )
    if not done:  # cancelled while training (or taken over): keep its state, drop the file
        logger.info("trial %s: no longer ours when it finished; result dropped", trial.pk)
        _attempt_spent(trial)
        if checkpoint:
            transaction.on_commit(lambda: default_storage.delete(checkpoint))
        return
    cell_result_update(trial=_with_search(Trial.objects).get(pk=trial.pk))
