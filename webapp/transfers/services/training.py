"""A gpu worker trains a transfer: claim it, resume from its last checkpoint, train in the
runner's child process, upload the checkpoints after every epoch, record the result, the
exports and the model card.

`transfer_run` is what the `train_transfer` task runs. Like a trial (webapp/trials/services.py),
a transfer is claimed under its row lock (pending, or running with a heartbeat older than
CELLSEARCH_HEARTBEAT_TIMEOUT: its worker died), each claim counts an attempt, and every later
write checks the attempt, so a worker presumed dead cannot overwrite a newer one. Unlike a
trial it resumes: every epoch's `last.pt` goes to Django storage, and a new attempt, on any
worker, downloads it and trains on from there. How an attempt ends is runner.run_transfer's
policy (the trials' one):

- finished: the result, the exports and the model card are recorded;
- stopped after an epoch because a pause was asked: paused (resume queues it again);
- stopped because it is no longer ours (cancelled, taken over): nothing more is written;
- the cell's own failure (a diverged loss, out of memory): failed with the message;
- a lost process (crashed, killed, hung): queued again, up to CELLSEARCH_MAX_ATTEMPTS attempts;
- TrialAborted (bad settings, a dataset missing on the workers, a memory-fit refusal, a bug):
  failed with the message;
- a checkpoint or export that cannot be stored (a full disk): paused at the last checkpoint
  stored, with the reason; resuming carries on from there.

Cost, as a trial's: an attempt's device-seconds (wall-clock × devices) are added to
`gpu_seconds` at each heartbeat (since the last one, or the claim) and at its end (the rest), so
a dead worker's attempt has cost up to its last heartbeat.

This worker never imports torch: the runner's parent side is torch-free.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.utils import timezone

from webapp import dispatch
from webapp.storage import StorageWriteError, store_file
from webapp.transfers.models import Transfer
from webapp.transfers.services.lifecycle import dataset_root
from webapp.trials.services import gpu_charge, runner_policy, threads_per_training, worker_device, worker_name

logger = logging.getLogger(__name__)

#: The files a worker uploads, by model field: the name in the training's out_dir.
CHECKPOINT_FILES = {"last_checkpoint": "last.pt", "best_checkpoint": "best.pt"}
#: Export formats (TransferResult.exports' keys) and the model field each file goes to.
EXPORT_FIELDS = {"onnx": "onnx_file", "torchscript": "torchscript_file"}


def transfer_claim(*, transfer_id: int) -> Transfer | None:
    """Take the transfer for this process, or None when it is not ours to train (ended, paused,
    or running with a fresh heartbeat elsewhere). Its epochs are cut back to its last stored
    checkpoint's, where this attempt resumes."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().filter(pk=transfer_id).first()
        if transfer is None:
            return None
        stale = transfer.status == Transfer.Status.RUNNING and transfer.heartbeat_at is not None \
            and transfer.heartbeat_at < stale_before
        if transfer.status != Transfer.Status.PENDING and not stale:
            return None
        transfer.status, transfer.worker, transfer.heartbeat_at = Transfer.Status.RUNNING, worker_name(), now
        transfer.started_at = transfer.started_at or now
        transfer.attempt_started_at = now
        transfer.attempts += 1
        kept = transfer.checkpoint_epoch if transfer.last_checkpoint else 0
        transfer.epochs = [e for e in transfer.epochs if e.get("epoch", 0) <= kept]
        transfer.save(update_fields=["status", "worker", "started_at", "heartbeat_at", "attempts", "epochs",
                                     "attempt_started_at", "updated_at"])
    return transfer


def _ours(transfer: Transfer):
    """The transfer's row while this attempt still owns it."""
    return Transfer.objects.filter(pk=transfer.pk, status=Transfer.Status.RUNNING, attempts=transfer.attempts)


def _spent(transfer: Transfer, now=None) -> dict:
    """Update fields adding this attempt's device-seconds not yet added (since its last beat, or its claim)."""
    return gpu_charge(transfer, start=transfer.attempt_started_at or transfer.started_at, now=now)


def _attempt_spent(transfer: Transfer) -> None:
    """Add the rest of an attempt's cost when it ended without a write of its own (cancelled while
    it ran); nothing when a newer attempt took it over (this one counted up to its last beat)."""
    Transfer.objects.filter(pk=transfer.pk, attempts=transfer.attempts).exclude(status=Transfer.Status.RUNNING) \
        .update(**_spent(transfer))


def transfer_run(*, transfer_id: int) -> Transfer | None:
    """Claim and train a transfer (module docstring); returns it, or None when there was nothing to train."""
    transfer = transfer_claim(transfer_id=transfer_id)
    if transfer is None:
        logger.info("transfer %s: not claimable here; nothing to do", transfer_id)
        return None
    with tempfile.TemporaryDirectory(prefix="cellsearch-transfer-") as out_dir:
        _train(transfer, out_dir)
    transfer.refresh_from_db()
    return transfer


def transfer_config_for_worker(transfer: Transfer):
    """The stored TransferConfig, with the server's data folder for datasets that need files."""
    from searchcore.transfer import TransferConfig

    return TransferConfig.from_dict({**transfer.config, "dataset": transfer.dataset,
                                     "data_root": dataset_root(transfer.dataset)})


def _storage_name(transfer: Transfer, filename: str) -> str:
    return f"transfers/transfer_{transfer.pk}/{filename}"


def _download(file, path: str) -> bool:
    """Copy a stored file to `path`; False when there is none."""
    if not file.name or not file.storage.exists(file.name):
        return False
    with file.storage.open(file.name, "rb") as source, open(path, "wb") as target:
        shutil.copyfileobj(source, target)
    return True


def _upload(transfer: Transfer, path: str, filename: str) -> str:
    """Save a file under the transfer's one name for it. When the previous file still holds that
    name, storage gives this one a suffix; the caller points the row at the new name and deletes
    the old file after the commit, so a crash never leaves the row without a whole file.
    Raises StorageWriteError (no partial file left) when the write fails."""
    return store_file(name=_storage_name(transfer, filename), path=path)


def _upload_all(transfer: Transfer, files: dict[str, str]) -> dict[str, str]:
    """Upload {field: local path}; returns {field: stored name}. When one fails, the ones already
    stored are removed and StorageWriteError propagates."""
    uploads: dict[str, str] = {}
    try:
        for field, path in files.items():
            uploads[field] = _upload(transfer, path, os.path.basename(path))
    except StorageWriteError:
        _drop(uploads.values())
        raise
    return uploads


def _swap_files(transfer: Transfer, row: Transfer, new: dict[str, str]) -> dict[str, Any]:
    """Update fields for the uploaded files; the files they replace are deleted after the commit."""
    old = [getattr(row, field).name for field in new if getattr(row, field).name]
    old = [name for name in old if name not in new.values()]
    if old:
        transaction.on_commit(lambda: _drop(old))
    return dict(new)


def _drop(names) -> None:
    for name in names:
        default_storage.delete(name)


def _train(transfer: Transfer, out_dir: str) -> None:
    from searchcore import runner
    from searchcore.errors import SearchcoreError

    epochs: list[dict] = list(transfer.epochs)
    last_beat = [timezone.now()]
    resumed = _download(transfer.last_checkpoint, os.path.join(out_dir, "last.pt"))
    if resumed:
        _download(transfer.best_checkpoint, os.path.join(out_dir, "best.pt"))
        logger.info("transfer %s, attempt %s: resumes after epoch %s", transfer.pk, transfer.attempts,
                    transfer.checkpoint_epoch)
    best_path = os.path.join(out_dir, "best.pt")
    best_seen = [_stamp(best_path)]
    not_stored = [""]  # why a file could not be stored, once one could not

    def on_beat(progress) -> bool:
        now = timezone.now()
        if (now - last_beat[0]).total_seconds() < settings.CELLSEARCH_HEARTBEAT_SECONDS:
            return True
        last_beat[0] = now
        try:
            ours = bool(_ours(transfer).update(heartbeat_at=now, **_spent(transfer, now)))
        except DatabaseError:  # a busy database: keep training, the next beat tries again
            logger.warning("transfer %s: could not beat", transfer.pk, exc_info=True)
            return True
        if ours:
            transfer.charged_until = now
        return ours

    def on_epoch(metrics) -> bool:
        """Upload last.pt (and best.pt when it changed), record the epoch; False to stop after it:
        a pause was asked, or the transfer is no longer ours."""
        record = asdict(metrics)
        epochs[:] = [e for e in epochs if e.get("epoch", 0) < record["epoch"]] + [record]
        now = last_beat[0] = timezone.now()
        if not _ours(transfer).exists():
            return False
        files: dict[str, str] = {}
        last_path = os.path.join(out_dir, "last.pt")
        if os.path.exists(last_path):
            files["last_checkpoint"] = last_path
        stamp = _stamp(best_path)
        if stamp is not None and stamp != best_seen[0]:
            files["best_checkpoint"] = best_path
        try:
            uploads = _upload_all(transfer, files)
        except StorageWriteError as exc:  # a full disk: stop here, keeping the last stored checkpoint
            not_stored[0] = f"epoch {record['epoch']}'s checkpoint: {exc}"
            return False
        if "best_checkpoint" in uploads:
            best_seen[0] = stamp
        with transaction.atomic():
            row = _ours(transfer).select_for_update().first()
            if row is None:
                transaction.on_commit(lambda: _drop(uploads.values()))
                return False
            fields = _swap_files(transfer, row, uploads)
            if "last_checkpoint" in uploads:
                fields["checkpoint_epoch"] = record["epoch"]
            _ours(transfer).update(epochs=epochs, heartbeat_at=now, **_spent(transfer, now), **fields)
            transfer.charged_until = now
            return not row.pause_requested

    try:
        outcome = runner.run_transfer(transfer.genotype, transfer_config_for_worker(transfer), out_dir=out_dir,
                                      on_epoch=on_epoch, on_beat=on_beat, num_threads=threads_per_training(),
                                      policy=runner_policy())
    except SearchcoreError as exc:  # TrialAborted, or stored settings this version refuses
        logger.error("transfer %s aborted: %s", transfer.pk, exc)
        _ours(transfer).update(status=Transfer.Status.FAILED, error=str(exc), finished_at=timezone.now(),
                               epochs=epochs, **_spent(transfer))
        return
    if outcome.status == "lost":
        logger.warning("transfer %s, attempt %s: %s", transfer.pk, transfer.attempts, outcome.message)
        _attempt_lost(transfer=transfer, reason=outcome.message, epochs=epochs)
        return
    if outcome.status == "failed":
        logger.warning("transfer %s failed: %s", transfer.pk, outcome.message)
        _ours(transfer).update(status=Transfer.Status.FAILED, error=outcome.message, finished_at=timezone.now(),
                               epochs=epochs, **_spent(transfer))
        return
    if not_stored[0]:
        _paused_for_storage(transfer=transfer, reason=not_stored[0])
        return
    if outcome.status == "stopped" or outcome.result is None or outcome.result.stopped:
        _stopped(transfer=transfer)
        return
    try:
        _finish(transfer=transfer, result=outcome.result, out_dir=out_dir, recorded=epochs)
    except StorageWriteError as exc:
        _paused_for_storage(transfer=transfer, reason=f"the final files: {exc}")


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


@transaction.atomic
def _stopped(*, transfer: Transfer) -> None:
    """It stopped after an epoch: paused when a pause was asked; otherwise it is no longer ours
    (cancelled, or taken over) and nothing is written."""
    if _ours(transfer).filter(pause_requested=True).update(
            status=Transfer.Status.PAUSED, pause_requested=False, worker="", heartbeat_at=timezone.now(),
            **_spent(transfer)):
        logger.info("transfer %s: paused", transfer.pk)
    else:
        logger.info("transfer %s: stopped (cancelled, or another worker took it)", transfer.pk)
        _attempt_spent(transfer)


@transaction.atomic
def _paused_for_storage(*, transfer: Transfer, reason: str) -> None:
    """A file could not be stored (a full disk): the transfer pauses at its last stored
    checkpoint with the reason, and resumes from there once there is room. Retrying at once
    would only fill the disk again."""
    if _ours(transfer).update(status=Transfer.Status.PAUSED, pause_requested=False, worker="",
                              heartbeat_at=timezone.now(), **_spent(transfer),
                              error=f"paused: could not store {reason}; free space and resume"):
        logger.error("transfer %s: paused, could not store %s", transfer.pk, reason)


@transaction.atomic
def _attempt_lost(*, transfer: Transfer, reason: str, epochs: list[dict]) -> None:
    """The training process crashed or hung: queued again (it resumes from its last checkpoint
    on whichever worker takes it) until CELLSEARCH_MAX_ATTEMPTS attempts have failed."""
    attempts, limit = transfer.attempts, settings.CELLSEARCH_MAX_ATTEMPTS
    now = timezone.now()
    if attempts >= limit:
        _ours(transfer).update(status=Transfer.Status.FAILED, finished_at=now, epochs=epochs,
                               error=f"{reason} (attempt {attempts} of {limit})", **_spent(transfer))
        return
    task_id = dispatch.new_task_id()
    if _ours(transfer).update(status=Transfer.Status.PENDING, worker="", task_id=task_id, heartbeat_at=now,
                              epochs=epochs, error=f"{reason} (attempt {attempts} of {limit}; queued again)",
                              **_spent(transfer)):
        dispatch.queue_train_transfer(transfer_id=transfer.pk, task_id=task_id)


def transfer_card_facts(*, transfer: Transfer, result, device: str) -> dict[str, Any]:
    """The plain facts searchcore.transfer.model_card writes the card from: the genotype, the
    recipe (without the server's data path), the result, where the cell came from, and what
    trained it (the worker's host and its GPU, or the worker's name on a CPU)."""
    search, trial = transfer.source_search, transfer.source_trial
    source: dict[str, Any] = {}
    if search is not None:
        source |= {"search": f"{search} (#{search.pk})", "strategy": search.strategy}
    if trial is not None:
        source |= {"trial": trial.index}
    host = transfer.worker.rsplit(":", 1)[0] or socket.gethostname()
    recipe = {**transfer_config_for_worker(transfer).to_dict(), "data_root": None}
    return {
        "name": transfer.name or None,
        "genotype": transfer.genotype,
        "recipe": recipe,
        "result": result.to_dict(),
        "source": source,
        "hardware": f"{host}, 1 × {device}" if device else f"{transfer.worker} (CPU)",
        "gpus": 1 if device else 0,
        "checkpoint": f"transfer{transfer.pk}-{transfer.cell_hash[:12]}-best.pt",
    }


def _finish(*, transfer: Transfer, result, out_dir: str, recorded: list[dict]) -> None:
    """Upload the final checkpoints and the exported models, write the model card, record it all."""
    from searchcore.errors import SearchcoreError
    from searchcore.transfer import model_card

    if not _ours(transfer).exists():
        _attempt_spent(transfer)
        return
    files: dict[str, str] = {}
    for field, filename in CHECKPOINT_FILES.items():
        path = os.path.join(out_dir, filename)
        if os.path.exists(path):
            files[field] = path
    for fmt, check in (result.exports or {}).items():
        export_field = EXPORT_FIELDS.get(fmt)
        path = os.path.join(out_dir, check.get("file") or "")
        if export_field and check.get("file") and os.path.exists(path):
            files[export_field] = path
    uploads = _upload_all(transfer, files)
    device: str = str(getattr(result, "device", "") or "") or worker_device(transfer_config_for_worker(transfer))
    # The result's epochs span every attempt; what this worker recorded fills in any it leaves out.
    by_epoch = {e["epoch"]: e for e in recorded}
    by_epoch.update({e["epoch"]: e for e in (asdict(m) if not isinstance(m, dict) else m for m in result.epochs)})
    epochs = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    wall = result.seconds if result.seconds else sum(e.get("seconds", 0.0) for e in epochs)
    try:
        card_md, card = model_card(transfer_card_facts(transfer=transfer, result=result, device=device))
    except (SearchcoreError, KeyError, TypeError, ValueError) as exc:  # the training stands without its card
        logger.error("transfer %s: no model card: %s", transfer.pk, exc)
        card_md, card = "", {"error": f"the model card could not be written: {exc}"}
    now = timezone.now()
    with transaction.atomic():
        row = _ours(transfer).select_for_update().first()
        if row is None:  # cancelled while exporting: keep its state, drop the new files
            logger.info("transfer %s: no longer ours when it finished; result dropped", transfer.pk)
            transaction.on_commit(lambda: _drop(uploads.values()))
            _attempt_spent(transfer)
            return
        fields = _swap_files(transfer, row, uploads)
        _ours(transfer).update(
            status=Transfer.Status.FINISHED, best_val_acc=result.best_val_acc, final_val_acc=result.final_val_acc,
            test_acc=result.test_acc, params=result.params, mult_adds=result.mult_adds, train_seconds=wall,
            exports=result.exports or {}, epochs=epochs, checkpoint_epoch=epochs[-1]["epoch"] if epochs else 0,
            model_card_md=card_md, model_card=card, device=device, finished_at=now, heartbeat_at=now,
            pause_requested=False, error="", **_spent(transfer), **fields)
