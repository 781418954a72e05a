"""A gpu worker's one-shot run against a real training process that dies: the real supernet
(digits, tiny) in the runner's child, killed by SIGKILL once its first epoch is stored. The
attempt is lost, the run goes back to the queue, and the next attempt, in a fresh folder as on
another worker, downloads the stored last.pt and trains only the epochs left.

The child imports `oneshot_killed_after_first_epoch` from tests/faults/targets.py by name.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_killed_supernet_is_queued_again_and_resumes_from_its_checkpoint(user, settings, tmp_path, monkeypatch):
    import io

    import torch
    from django.core.files.storage import default_storage
    from django.db import transaction

    import searchcore.runner
    from tests.faults.test_runner import REPO
    from webapp import dispatch
    from webapp.celery import app
    from webapp.searches.models import OneShotRun, Search
    from webapp.searches.services import search_create
    from webapp.searches.services.control import search_advance
    from webapp.searches.services.oneshot import oneshot_run

    settings.MEDIA_ROOT = str(tmp_path / "media")
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **kw: sent.append((name, args[0])))
    note = tmp_path / "epochs"
    monkeypatch.setenv("CELLSEARCH_FAULT_FILE", str(note))
    monkeypatch.chdir(REPO)  # the child imports this module from here
    monkeypatch.setattr(searchcore.runner, "ONESHOT_TARGET", "tests.faults.targets:oneshot_killed_after_first_epoch")
    with transaction.atomic():
        search = search_create(
            user=user, space="nasnet", strategy="enas", dataset="digits", budget=2, parallelism=1, seed=0,
            proxy={"cells": 1, "base_filters": 4, "batch_size": 256, "device": "cpu"},
            space_options={"num_blocks": 2, "ops": ["identity", "sep_conv_3x3", "max_pool_3x3"]},
            strategy_options={"epochs": 3, "controller_steps": 2, "final_samples": 4})
    search_advance(search_id=search.pk)
    run = OneShotRun.objects.get(search=search)

    oneshot_run(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == OneShotRun.Status.PENDING and run.attempts == 1, run.error
    assert "SIGKILL" in run.error and "queued again" in run.error
    assert run.checkpoint_epoch == 1 and [e["epoch"] for e in run.epochs] == [1]
    assert sent[-1] == (dispatch.TRAIN_ONESHOT, run.pk)
    with default_storage.open(run.last_checkpoint.name) as f:
        checkpoint = torch.load(io.BytesIO(f.read()), weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["strategy"]["strategy"] == "reinforce"

    oneshot_run(run_id=run.pk)  # the message the lost attempt queued, on any worker

    run.refresh_from_db()
    assert run.status == OneShotRun.Status.FINISHED and run.attempts == 2, run.error
    assert note.read_text().split() == ["1", "2", "3"]  # the second attempt trained epochs 2 and 3 only
    assert [e["epoch"] for e in run.epochs] == [1, 2, 3] and run.checkpoint_epoch == 3 and run.top
    assert sent[-1] == (dispatch.ADVANCE_SEARCH, search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.RUNNING and run.gpu_seconds > 0
