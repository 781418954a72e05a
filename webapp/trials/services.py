"""Writes for trials: a gpu worker claims a trial, trains it, and reports every epoch.

`trial_run` is what the `train_trial` task runs. It trains only a trial it has claimed
(pending → running in one UPDATE, or running with a heartbeat older than
CELLSEARCH_HEARTBEAT_TIMEOUT: its worker died), so a duplicate message or a second run never
trains a finished trial again. Each claim increments `attempts`, and every later write is
guarded by it: a worker presumed dead that wakes up cannot overwrite a newer attempt.
torch is imported only inside the functions that train.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import threading
from dataclasses import asdict, replace
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from webapp.searches.models import Search
from webapp.trials.models import Trial

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
        trial = Trial.objects.select_for_update(of=("self",)).select_related("search").filter(pk=trial_id).first()
        if trial is None or trial.search.status in (Search.Status.CANCELLED, Search.Status.FAILED):
            return None
        stale = trial.status == Trial.Status.RUNNING and trial.heartbeat_at is not None \
            and trial.heartbeat_at < stale_before
        if trial.status != Trial.Status.PENDING and not stale:
            return None
        trial.status, trial.worker, trial.started_at, trial.heartbeat_at = Trial.Status.RUNNING, worker_name(), now, now
        trial.attempts += 1
        trial.epochs, trial.error = [], ""
        trial.save(update_fields=["status", "worker", "started_at", "heartbeat_at", "attempts", "epochs", "error"])
    return trial


def _ours(trial: Trial):
    """The trial's row while this attempt still owns it."""
    return Trial.objects.filter(pk=trial.pk, status=Trial.Status.RUNNING, attempts=trial.attempts)


@contextlib.contextmanager
def _heartbeat(trial: Trial):
    """Beat `heartbeat_at` every CELLSEARCH_HEARTBEAT_SECONDS from a thread while the block runs."""
    stopped = threading.Event()

    def beat() -> None:
        try:
            while not stopped.wait(settings.CELLSEARCH_HEARTBEAT_SECONDS):
                try:
                    if not _ours(trial).update(heartbeat_at=timezone.now()):
                        return  # cancelled or taken over: nothing left to beat for
                except Exception:  # a busy database must not kill the training
                    logger.warning("trial %s: heartbeat failed", trial.pk, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{trial.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


def _proxy_config(search: Search):
    """The search's ProxyConfig, with the server's data folder for datasets that need files."""
    from searchcore.data import DATASETS
    from searchcore.proxy import ProxyConfig

    config = ProxyConfig.from_dict(search.proxy)
    if config.data_root is None and DATASETS.get(config.dataset).needs_root:
        config = replace(config, data_root=os.path.join(settings.CELLSEARCH_DATA_ROOT, config.dataset))
    return config


def _checkpoint_name(trial: Trial) -> str:
    """One file per attempt, so an attempt that lost its claim never touches the live one."""
    return f"checkpoints/search_{trial.search_id}/trial_{trial.index}.attempt{trial.attempts}.pt"


def trial_run(*, trial_id: int) -> Trial | None:
    """Claim and train a trial, recording each epoch; returns the trial, or None when there was
    nothing to train. Any error fails the trial (the search goes on). Queues the search's next
    control step in every case but the no-op."""
    from webapp.searches.services import queue_advance_search

    trial = trial_claim(trial_id=trial_id)
    if trial is None:
        logger.info("trial %s: not claimable here; nothing to do", trial_id)
        return None
    try:
        _train(trial)
    finally:
        with transaction.atomic():
            queue_advance_search(search_id=trial.search_id)
    trial.refresh_from_db()
    return trial


def _train(trial: Trial) -> None:
    from searchcore.genotype import parse_genotype
    from searchcore.train import proxy_dataset, train_child

    search = trial.search
    epochs: list[dict] = []
    checkpoint: dict[str, str] = {}

    def on_epoch(metrics) -> bool:
        """Record the epoch; False (stop) once the trial is no longer ours or its search is cancelled."""
        epochs.append(asdict(metrics))
        try:
            still_ours = _ours(trial).update(epochs=epochs, heartbeat_at=timezone.now())
            status = Search.objects.filter(pk=search.pk).values_list("status", flat=True).first()
        except DatabaseError:  # a busy database: keep training, the next epoch writes them all
            logger.warning("trial %s: could not record epoch %s", trial.pk, metrics.epoch, exc_info=True)
            return True
        return bool(still_ours) and status != Search.Status.CANCELLED

    def checkpoint_sink(state: dict) -> None:
        import torch

        if not _ours(trial).exists():
            return  # taken over or cancelled: the file would belong to nobody
        buffer = io.BytesIO()
        torch.save(state, buffer)
        checkpoint["name"] = default_storage.save(_checkpoint_name(trial), ContentFile(buffer.getvalue()))

    try:
        with _heartbeat(trial):
            config = _proxy_config(search)
            result = train_child(
                parse_genotype(trial.genotype), config, on_epoch=on_epoch, data=proxy_dataset(config),
                checkpoint_sink=checkpoint_sink if search.keep_checkpoints else None,
            )
    except Exception as exc:  # a diverged loss, CUDA out of memory, a bug: the trial fails
        logger.exception("trial %s (search %s) failed", trial.pk, search.pk)
        _release_cuda_memory()
        _ours(trial).update(status=Trial.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                            finished_at=timezone.now(), epochs=epochs)
        return
    _trial_finish(trial=trial, result=result, checkpoint=checkpoint.get("name", ""))


@transaction.atomic
def _trial_finish(*, trial: Trial, result, checkpoint: str) -> None:
    from webapp.cells.services import cell_result_update

    now = timezone.now()
    done = _ours(trial).update(
        status=Trial.Status.FINISHED, reward=result.reward, val_acc=result.val_acc, params=result.params,
        mult_adds=result.mult_adds, epochs=[asdict(e) for e in result.epochs], finished_at=now,
        heartbeat_at=now, checkpoint=checkpoint,
    )
    if not done:  # cancelled while training (or taken over): keep its state, drop the file
        logger.info("trial %s: no longer ours when it finished; result dropped", trial.pk)
        if checkpoint:
            transaction.on_commit(lambda: default_storage.delete(checkpoint))
        return
    cell_result_update(trial=Trial.objects.select_related("search").get(pk=trial.pk))


def _release_cuda_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        logger.debug("could not empty the CUDA cache", exc_info=True)
