"""A gpu worker's transfer against a real training process that dies: the real transfer
training (digits, tiny) in the runner's child, killed by SIGKILL after its second epoch. The
attempt is lost, the transfer goes back to the queue, and the next attempt downloads the
stored last checkpoint and trains only the epoch left.

The child imports `transfer_killed_after_second_epoch` from tests/faults/targets.py by name.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


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
    monkeypatch.setattr(searchcore.runner, "TRANSFER_TARGET", "tests.faults.targets:transfer_killed_after_second_epoch")

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
