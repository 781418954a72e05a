"""A gpu worker trains a transfer: claim it, resume from its last checkpoint, train in the
runner's child process, upload the checkpoints after every epoch, record the result, the
exports and the model card.

`transfer_run` is what the `train_transfer` task runs. A transfer is a ResumableRun: its
claim, heartbeat, cost, stored epochs, pause, loss of a process and full disk are
webapp.runs.services'. Besides those endings of an attempt:

- finished: the result, the exports and the model card are recorded;
- the cell's own failure (a diverged loss, out of memory): failed with the message;
- TrialAborted (bad settings, a dataset missing on the workers, a memory-fit refusal, a bug):
  failed with the message.

This worker never imports torch: the runner's parent side is torch-free.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from dataclasses import asdict
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.datasets import dataset_root
from webapp.runs.services.training import (
    StoredEpochs,
    attempt_spent,
    download,
    drop,
    file_stamp,
    heartbeat,
    ours,
    run_attempt_lost,
    run_claim,
    run_failed,
    run_paused_for_storage,
    run_stopped,
    spent,
    swap_files,
    upload_all,
)
from webapp.storage import StorageWriteError
from webapp.transfers.models import Transfer
from webapp.transfers.services.lifecycle import queue_transfer
from webapp.trials.services import runner_policy, threads_per_training, worker_device

logger = logging.getLogger(__name__)

#: The files a worker uploads, by model field: the name in the training's out_dir.
CHECKPOINT_FILES = {"last_checkpoint": "last.pt", "best_checkpoint": "best.pt"}
#: Export formats (TransferResult.exports' keys) and the model field each file goes to.
EXPORT_FIELDS = {"onnx": "onnx_file", "torchscript": "torchscript_file"}


def transfer_run(*, transfer_id: int) -> Transfer | None:
    """Claim and train a transfer (module docstring); returns it, or None when there was nothing to train."""
    transfer = run_claim(Transfer, pk=transfer_id)
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


def _train(transfer: Transfer, out_dir: str) -> None:
    from searchcore import runner
    from searchcore.errors import SearchcoreError

    stored = StoredEpochs(transfer)
    resumed = download(transfer.last_checkpoint, os.path.join(out_dir, "last.pt"))
    if resumed:
        download(transfer.best_checkpoint, os.path.join(out_dir, "best.pt"))
        logger.info("transfer %s, attempt %s: resumes after epoch %s", transfer.pk, transfer.attempts,
                    transfer.checkpoint_epoch)
    best_path = os.path.join(out_dir, "best.pt")
    best_seen = [file_stamp(best_path)]

    def on_epoch(metrics) -> bool:
        """Store last.pt (and best.pt when it changed) with the epoch; False to stop after it."""
        files: dict[str, str] = {}
        last_path = os.path.join(out_dir, "last.pt")
        if os.path.exists(last_path):
            files["last_checkpoint"] = last_path
        stamp = file_stamp(best_path)
        if stamp is not None and stamp != best_seen[0]:
            files["best_checkpoint"] = best_path
        go_on = stored.record(asdict(metrics), files)
        if not stored.not_stored:
            best_seen[0] = stamp
        return go_on

    try:
        outcome = runner.run_transfer(transfer.genotype, transfer_config_for_worker(transfer), out_dir=out_dir,
                                      on_epoch=on_epoch, on_beat=heartbeat(transfer),
                                      num_threads=threads_per_training(), policy=runner_policy())
    except SearchcoreError as exc:  # TrialAborted, or stored settings this version refuses
        logger.error("transfer %s aborted: %s", transfer.pk, exc)
        run_failed(transfer, error=str(exc), epochs=stored.epochs)
        return
    if outcome.status == "lost":
        logger.warning("transfer %s, attempt %s: %s", transfer.pk, transfer.attempts, outcome.message)
        run_attempt_lost(transfer, reason=outcome.message, epochs=stored.epochs, queue=queue_transfer)
        return
    if outcome.status == "failed":
        logger.warning("transfer %s failed: %s", transfer.pk, outcome.message)
        run_failed(transfer, error=outcome.message, epochs=stored.epochs)
        return
    if stored.not_stored:
        run_paused_for_storage(transfer, reason=stored.not_stored)
        return
    if outcome.status == "stopped" or outcome.result is None or outcome.result.stopped:
        run_stopped(transfer)
        return
    try:
        _finish(transfer=transfer, result=outcome.result, out_dir=out_dir, recorded=stored.epochs)
    except StorageWriteError as exc:
        run_paused_for_storage(transfer, reason=f"the final files: {exc}")


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

    if not ours(transfer).exists():
        attempt_spent(transfer)
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
    uploads = upload_all(transfer, files)
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
        row = ours(transfer).select_for_update().first()
        if row is None:  # cancelled while exporting: keep its state, drop the new files
            logger.info("transfer %s: no longer ours when it finished; result dropped", transfer.pk)
            transaction.on_commit(lambda: drop(uploads.values()))
            attempt_spent(transfer)
            return
        fields = swap_files(row, uploads)
        ours(transfer).update(
            status=Transfer.Status.FINISHED, best_val_acc=result.best_val_acc, final_val_acc=result.final_val_acc,
            test_acc=result.test_acc, params=result.params, mult_adds=result.mult_adds, train_seconds=wall,
            exports=result.exports or {}, epochs=epochs, checkpoint_epoch=epochs[-1]["epoch"] if epochs else 0,
            model_card_md=card_md, model_card=card, device=device, finished_at=now, heartbeat_at=now,
            pause_requested=False, error="", **spent(transfer), **fields)
