"""A gpu worker's transfer against a real training process that dies: the real transfer
training (digits, tiny) in the runner's child, killed by SIGKILL after its second epoch. The
attempt is lost, the transfer goes back to the queue, and the next attempt downloads the
stored last checkpoint and trains only the epoch left.

The child imports `killed_after_second_epoch` from this module by name, so its top level
imports nothing of Django.
"""

from __future__ import annotations

import os
import signal

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def killed_after_second_epoch(genotype, config, *, out_dir, on_epoch, on_progress):
    """searchcore.transfer_train.train_transfer, noting each epoch it trains in
    CELLSEARCH_FAULT_FILE; the first time through it dies by SIGKILL once epoch 2 is reported."""
    from searchcore.transfer_train import train_transfer

    note = os.environ["CELLSEARCH_FAULT_FILE"]
    first_time = not os.path.exists(note)

    def epoch_then_die(metrics):
        with open(note, "a") as f:
            f.write(f"{metrics.epoch}\n")
        go = on_epoch(metrics)
        if first_time and metrics.epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return go

    return train_transfer(genotype, config, out_dir=out_dir, on_epoch=epoch_then_die, on_progress=on_progress)


@pytest.fixture
def sent(monkeypatch):
    from webapp import dispatch
    from webapp.celery import app

    messages: list[tuple] = []

    def send_task(name, args=(), task_id=None, **kwargs):
        if name == dispatch.TRAIN_TRANSFER:
            messages.append((args[0], task_id))

    monkeypatch.setattr(app, "send_task", send_task)
    return messages


def test_a_killed_transfer_is_queued_again_and_resumes_from_its_checkpoint(
        make_search, user, sent, settings, tmp_path, monkeypatch):
    import io

    import torch
    from django.core.files.storage import default_storage

    import searchcore.runner
    from tests.faults.test_runner import REPO
    from webapp.cells.models import Cell
    from webapp.transfers.models import Transfer
    from webapp.transfers.services import transfer_create
    from webapp.transfers.services.training import transfer_run
    from webapp.trials.models import Trial

    settings.MEDIA_ROOT = str(tmp_path / "media")
    note = tmp_path / "epochs"
    monkeypatch.setenv("CELLSEARCH_FAULT_FILE", str(note))
    monkeypatch.chdir(REPO)  # the child imports this module from here
    monkeypatch.setattr(searchcore.runner, "TRANSFER_TARGET", f"{__name__}:killed_after_second_epoch")

    genotype = {"format": "cellsearch.nasnet/1",
                "normal": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}],
                "reduction": [{"inputs": [0, 1], "ops": ["max_pool_3x3", "identity"], "combine": "add"}]}
    from searchcore.spaces import parse_genotype

    cell = Cell.objects.create(cell_hash=parse_genotype(genotype).canonical_hash(), space="nasnet", genotype=genotype)
    search = make_search()
    trial = Trial.objects.create(search=search, index=0, cell=cell, genotype=genotype, cell_hash=cell.cell_hash,
                                 status="finished", reward=0.5)
    transfer = transfer_create(user=user, source_trial=trial, preset="quick", overrides={
        "cells": 1, "base_filters": 4, "epochs": 3, "batch_size": 128, "device": "cpu", "drop_path_keep": 1.0,
        "auxiliary_weight": 0.0})

    transfer_run(transfer_id=transfer.pk)

    transfer.refresh_from_db()
    assert transfer.status == "pending" and transfer.attempts == 1, transfer.error
    assert "SIGKILL" in transfer.error and "queued again" in transfer.error
    assert transfer.checkpoint_epoch == 2 and [e["epoch"] for e in transfer.epochs] == [1, 2]
    assert sent[-1] == (transfer.pk, transfer.task_id)
    with default_storage.open(transfer.last_checkpoint.name) as f:
        assert torch.load(io.BytesIO(f.read()), weights_only=True)["epoch"] == 2

    transfer_run(transfer_id=transfer.pk)  # the message the lost attempt queued, on any worker

    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.FINISHED and transfer.attempts == 2, transfer.error
    assert note.read_text().split() == ["1", "2", "3"]  # the second attempt trained epoch 3 only
    assert [e["epoch"] for e in transfer.epochs] == [1, 2, 3] and transfer.checkpoint_epoch == 3
    assert transfer.exports["onnx"]["ok"] and transfer.model_card["results"]["epochs_trained"] == 3


def _wait_for(condition, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def test_a_transfer_launched_through_the_api_survives_its_worker_killed_and_ends_with_the_uninterrupted_weights(
        celery_worker_process, user, make_search, settings, tmp_path):
    """Issue 15's drill: a real Celery worker training a transfer is killed by SIGKILL after the
    first epoch, as a machine that dies. A new worker starts; the reconciler finds the silent
    transfer and queues it again; the new attempt resumes from the stored checkpoint, and the
    final weights equal, bit for bit, those of an uninterrupted run of the same seed on the CPU."""
    import io
    import time

    import torch
    from django.core.files.storage import default_storage
    from rest_framework.test import APIClient

    from searchcore.spaces import parse_genotype
    from searchcore.transfer_train import train_transfer
    from webapp.cells.models import Cell
    from webapp.transfers.models import Transfer
    from webapp.transfers.services.reconcile import transfers_reconcile
    from webapp.transfers.services.training import transfer_config_for_worker
    from webapp.trials.models import Trial

    genotype = {"format": "cellsearch.nasnet/1",
                "normal": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}],
                "reduction": [{"inputs": [0, 1], "ops": ["max_pool_3x3", "identity"], "combine": "add"}]}
    cell = Cell.objects.create(cell_hash=parse_genotype(genotype).canonical_hash(), space="nasnet", genotype=genotype)
    Trial.objects.create(search=make_search(), index=0, cell=cell, genotype=genotype, cell_hash=cell.cell_hash,
                         status="finished", reward=0.5)
    client = APIClient()
    client.force_authenticate(user)
    response = client.post("/api/transfers/", {
        "cell_hash": cell.cell_hash, "preset": "quick", "cells": 1, "base_filters": 4, "epochs": 6,
        "batch_size": 128, "device": "cpu", "seed": 3}, format="json")
    assert response.status_code == 201, response.json()
    transfer = Transfer.objects.get(pk=response.json()["id"])

    def row():
        return Transfer.objects.get(pk=transfer.pk)

    _wait_for(lambda: row().checkpoint_epoch >= 1, 120, "the first epoch's checkpoint was not stored")
    celery_worker_process.kill()
    killed = row()
    assert killed.status == Transfer.Status.RUNNING and killed.checkpoint_epoch < 6

    celery_worker_process.start()
    time.sleep(settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1)  # the dead worker's heartbeat goes stale
    assert transfers_reconcile()["requeued"] == [transfer.pk]
    _wait_for(lambda: row().status in Transfer.ENDED, 240, "the resumed transfer did not end")
    done = row()
    assert done.status == Transfer.Status.FINISHED and done.attempts == 2, done.error
    assert [e["epoch"] for e in done.epochs] == [1, 2, 3, 4, 5, 6]

    with default_storage.open(done.last_checkpoint.name) as f:
        resumed = torch.load(io.BytesIO(f.read()), weights_only=True)["model"]
    out = tmp_path / "uninterrupted"
    train_transfer(parse_genotype(genotype), transfer_config_for_worker(done), out_dir=out, exports=())
    uninterrupted = torch.load(out / "last.pt", weights_only=True)["model"]
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed), "resumed weights differ"
