"""Transfers: launch (API and page) with validation once at the edge, the gpu worker's claim,
training, pause/resume/cancel, lost attempts, the reconciler, and the downloads.

A stand-in replaces searchcore.runner.run_transfer where the worker calls it: it writes
last.pt/best.pt after each epoch (text, "epoch N"), resumes from a last.pt it finds, and writes
the exports at the end, as the real training does. Tests commit (transaction=True), as a worker does.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.test import APIClient

import searchcore.runner
from searchcore.results import EpochMetrics
from searchcore.runner import TrialAborted, TrialOutcome
from searchcore.transfer import TransferResult
from webapp import dispatch
from webapp.celery import app as celery_app
from webapp.transfers.models import Transfer
from webapp.transfers.services import transfer_pause, transfer_resume
from webapp.transfers.services.reconcile import transfers_reconcile
from webapp.transfers.services.training import transfer_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CELLSEARCH_DATA_ROOT = str(tmp_path / "data")


@pytest.fixture
def sent(monkeypatch):
    """The train_transfer messages sent (transfer id, task id), instead of a broker."""
    messages = []

    def send_task(name, args=(), task_id=None, **options):
        if name == dispatch.TRAIN_TRANSFER:
            messages.append((args[0], task_id))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    monkeypatch.setattr(celery_app.control, "revoke", lambda *a, **k: None)
    return messages


@pytest.fixture
def calls():
    return []


def _metrics(epoch: int) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, train_loss=2.0 / epoch, train_acc=0.3 * epoch / 3, val_loss=2.5 / epoch,
                        val_acc=0.25 * epoch, lr=0.05, seconds=2.0, images_per_second=500.0)


@pytest.fixture
def stand_in(monkeypatch, calls):
    """`stand_in(between=None, outcome=None)`: run_transfer trains `config.epochs` fake epochs,
    calling `between(epoch, on_beat)` before each; `outcome` replaces the whole training."""

    def use(between=None, outcome=None):
        def run_transfer(genotype, config, *, out_dir, on_epoch=None, on_beat=None, num_threads=None, policy=None):
            last = os.path.join(out_dir, "last.pt")
            start = 1
            if os.path.exists(last):
                with open(last) as f:
                    start = int(f.read().split()[1]) + 1
            calls.append({"start": start, "config": config, "genotype": genotype})
            if outcome is not None:
                return outcome(on_beat)
            history = []
            for epoch in range(start, config.epochs + 1):
                if between is not None and between(epoch, on_beat) is False:
                    return TrialOutcome("stopped", message="training stopped: its caller asked")
                for name in ("last.pt", "best.pt"):
                    with open(os.path.join(out_dir, name), "w") as f:
                        f.write(f"epoch {epoch}")
                history.append(_metrics(epoch))
                if on_epoch(history[-1]) is False:
                    return TrialOutcome("finished", result=_result(history, stopped=True))
            exports = {}
            for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.ts")):
                with open(os.path.join(out_dir, name), "w") as f:
                    f.write(fmt)
                exports[fmt] = {"file": name, "max_abs_diff": 1e-6, "ok": True, "batch": [2, 1, 16, 16]}
            return TrialOutcome("finished", result=_result(history, stopped=False, exports=exports))

        monkeypatch.setattr(searchcore.runner, "run_transfer", run_transfer)

    return use


def _result(history, *, stopped, exports=None) -> TransferResult:
    return TransferResult(best_val_acc=max(m.val_acc for m in history), final_val_acc=history[-1].val_acc,
                          test_acc=None if stopped else 0.7, params=1234, mult_adds=56789, epochs=list(history),
                          seconds=3.0, stopped=stopped, exports=exports or {})


@pytest.fixture
def make_transfer(api, transfer_source, sent):
    def make(**body):
        response = api.post("/api/transfers/", {"trial": transfer_source.pk, "preset": "quick", "epochs": 3,
                                                **body}, format="json")
        assert response.status_code == 201, response.json()
        return Transfer.objects.get(pk=response.json()["id"])

    return make


def _read(name: str) -> str:
    with default_storage.open(name) as f:
        return f.read().decode()


# -- launch ---------------------------------------------------------------------------------------


def test_create_by_cell_hash_stores_the_source_and_queues_on_the_gpu_queue(api, transfer_source, sent, settings):
    response = api.post("/api/transfers/", {"cell_hash": transfer_source.cell_hash, "preset": "quick",
                                            "epochs": 4, "base_filters": 12, "name": "digits run"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    transfer = Transfer.objects.get(pk=body["id"])
    assert (transfer.cell_id, transfer.source_trial_id, transfer.source_search_id) == (
        transfer_source.cell_id, transfer_source.pk, transfer_source.search_id)
    assert transfer.genotype == transfer_source.genotype and transfer.cell_hash == transfer_source.cell_hash
    assert transfer.team_id == transfer_source.search.team_id and transfer.status == "pending"
    assert transfer.dataset == "digits" and transfer.preset == "quick"
    assert transfer.config["epochs"] == 4 and transfer.config["base_filters"] == 12
    assert transfer.config["filters"] is None and "dataset" not in transfer.config
    assert "data_root" not in transfer.config
    assert sent == [(transfer.pk, transfer.task_id)]
    assert settings.CELERY_TASK_ROUTES[dispatch.TRAIN_TRANSFER] == {"queue": dispatch.GPU_QUEUE}
    assert body["progress"]["epochs_total"] == 4 and body["network"]["cells"] == 2
    assert body["files"] == {"genotype": f"/api/transfers/{transfer.pk}/files/genotype"}


@pytest.mark.parametrize(("body", "field"), [
    ({"epochs": 0}, "epochs"),
    ({"lr": -1.0}, "lr"),
    ({"filters": 48, "base_filters": 8}, "base_filters"),
    ({"preset": "nope"}, "preset"),
    ({"data_root": "/etc"}, "data_root"),
    ({"dataset": "mnist-please"}, "dataset"),
])
def test_bad_settings_are_a_400_naming_the_field_and_nothing_is_queued(api, transfer_source, sent, body, field):
    response = api.post("/api/transfers/", {"trial": transfer_source.pk, "preset": "quick", **body}, format="json")

    assert response.status_code == 400, response.json()
    assert list(response.json()) == [field] and response.json()[field][0]
    assert not Transfer.objects.exists() and sent == []


def test_a_missing_dataset_folder_is_refused_before_anything_is_queued(api, transfer_source, sent, settings):
    response = api.post("/api/transfers/", {"trial": transfer_source.pk, "preset": "nasnet-cifar"}, format="json")

    assert response.status_code == 400
    assert "cifar10" in response.json()["dataset"][0]
    assert not Transfer.objects.exists() and sent == []


def test_the_cell_or_the_trial_one_of_the_two(api, transfer_source, sent):
    neither = api.post("/api/transfers/", {"preset": "quick"}, format="json")
    both = api.post("/api/transfers/", {"trial": transfer_source.pk, "cell_hash": "x"}, format="json")
    assert neither.status_code == both.status_code == 400
    assert "cell_hash" in neither.json() and "cell_hash" in both.json()


def test_another_teams_cell_trial_and_transfer_are_404(other_user, transfer_source, make_transfer):
    transfer = make_transfer()
    client = APIClient()
    client.force_login(other_user)

    assert client.post("/api/transfers/", {"cell_hash": transfer_source.cell_hash}, format="json").status_code == 404
    assert client.post("/api/transfers/", {"trial": transfer_source.pk}, format="json").status_code == 404
    assert client.get(f"/api/transfers/{transfer.pk}/").status_code == 404
    assert client.get(f"/api/transfers/{transfer.pk}/files/genotype").status_code == 404
    assert client.post(f"/api/transfers/{transfer.pk}/cancel/").status_code == 404
    assert client.get("/api/transfers/").json()["results"] == []
    client.force_login(other_user)
    assert client.get(f"/transfers/{transfer.pk}/").status_code == 404
    assert client.get(f"/transfers/new/?trial={transfer_source.pk}").status_code == 404


def test_presets_api(api):
    presets = api.get("/api/transfers/presets/").json()
    assert presets["nasnet-cifar"]["cells"] == 6 and presets["nasnet-cifar"]["filters"] == 768
    assert presets["quick"]["dataset"] == "digits"


# -- the worker ---------------------------------------------------------------------------------


def test_a_worker_trains_uploads_and_writes_the_card(make_transfer, stand_in, calls, api):
    stand_in()
    transfer = make_transfer()

    assert transfer_run(transfer_id=transfer.pk) is not None

    transfer.refresh_from_db()
    assert transfer.status == "finished", transfer.error
    assert calls[0]["start"] == 1 and calls[0]["config"].epochs == 3 and calls[0]["config"].data_root is None
    assert [e["epoch"] for e in transfer.epochs] == [1, 2, 3] and transfer.checkpoint_epoch == 3
    assert (transfer.best_val_acc, transfer.final_val_acc, transfer.test_acc) == (0.75, 0.75, 0.7)
    assert (transfer.params, transfer.mult_adds, transfer.train_seconds) == (1234, 56789, 3.0)
    assert transfer.worker and transfer.attempts == 1 and transfer.error == ""
    assert transfer.exports["onnx"]["ok"] and transfer.exports["torchscript"]["file"] == "model.ts"
    assert _read(transfer.last_checkpoint.name) == _read(transfer.best_checkpoint.name) == "epoch 3"
    assert _read(transfer.onnx_file.name) == "onnx" and _read(transfer.torchscript_file.name) == "torchscript"
    assert transfer.last_checkpoint.name.startswith(f"transfers/transfer_{transfer.pk}/last")
    # one file of each kind left: each epoch's upload replaced the one before
    assert len(default_storage.listdir(f"transfers/transfer_{transfer.pk}")[1]) == 4

    card = transfer.model_card
    assert card["cell"]["hash"] == transfer.cell_hash and card["architecture"]["params"] == 1234
    assert card["results"]["test_acc"] == 0.7 and card["training"]["data_root"] is None
    assert card["cell"]["source"]["trial"] == transfer.source_trial.index
    assert transfer.worker.rsplit(":", 1)[0] in card["compute"]["hardware"]
    assert "# " in transfer.model_card_md and transfer.cell_hash in transfer.model_card_md

    # A duplicate message finds nothing to claim.
    assert transfer_run(transfer_id=transfer.pk) is None

    files = api.get(f"/api/transfers/{transfer.pk}/").json()["files"]
    assert set(files) == {"best", "last", "onnx", "torchscript", "genotype", "card.md", "card.json"}
    best = api.get(files["best"])
    assert best.status_code == 200 and b"".join(best.streaming_content) == b"epoch 3"
    assert f"transfer{transfer.pk}-" in best["Content-Disposition"] and "best.pt" in best["Content-Disposition"]
    assert json.loads(api.get(files["card.json"]).content)["cell"]["hash"] == transfer.cell_hash
    assert api.get(files["card.md"]).content.decode() == transfer.model_card_md
    assert json.loads(api.get(files["genotype"]).content)["format"] == "cellsearch.nasnet/1"
    page = api.get(f"/transfers/{transfer.pk}/files/onnx")
    assert page.status_code == 200 and b"".join(page.streaming_content) == b"onnx"
    assert api.get(f"/transfers/{transfer.pk}/files/nothing").status_code == 404


def test_pause_stops_after_the_epoch_and_resume_goes_on_from_its_checkpoint(make_transfer, stand_in, calls, sent):
    def between(epoch, on_beat):
        if epoch == 2:  # the user pauses while epoch 2 trains
            transfer_pause(transfer=Transfer.objects.get())
        return on_beat(None)

    stand_in(between=between)
    transfer = make_transfer()
    transfer_run(transfer_id=transfer.pk)

    transfer.refresh_from_db()
    assert transfer.status == "paused" and not transfer.pause_requested
    assert transfer.checkpoint_epoch == 2 and [e["epoch"] for e in transfer.epochs] == [1, 2]
    assert _read(transfer.last_checkpoint.name) == "epoch 2"
    assert transfer_run(transfer_id=transfer.pk) is None  # a paused transfer is not claimed

    stand_in()
    transfer_resume(transfer=transfer)
    transfer.refresh_from_db()
    assert transfer.status == "pending" and sent[-1] == (transfer.pk, transfer.task_id)
    transfer_run(transfer_id=transfer.pk)

    transfer.refresh_from_db()
    assert calls[-1]["start"] == 3  # it downloaded last.pt and resumed
    assert transfer.status == "finished" and transfer.attempts == 2
    assert [e["epoch"] for e in transfer.epochs] == [1, 2, 3]


def test_pausing_a_queued_transfer_is_at_once_and_resume_requeues(make_transfer, sent):
    transfer = make_transfer()
    transfer_pause(transfer=transfer)
    assert Transfer.objects.get().status == "paused"
    with pytest.raises(Exception, match="only a queued or running"):
        transfer_pause(transfer=transfer)
    transfer_resume(transfer=transfer)
    assert Transfer.objects.get().status == "pending" and len(sent) == 2


def test_cancel_stops_a_running_training(make_transfer, stand_in, api):
    def between(epoch, on_beat):
        if epoch == 2:
            assert api.post(f"/api/transfers/{Transfer.objects.get().pk}/cancel/").json()["status"] == "cancelled"
        return on_beat(None)

    stand_in(between=between)
    transfer = make_transfer()
    transfer_run(transfer_id=transfer.pk)

    transfer.refresh_from_db()
    assert transfer.status == "cancelled" and transfer.checkpoint_epoch == 1
    assert api.post(f"/api/transfers/{transfer.pk}/cancel/").status_code == 400
    assert api.post(f"/api/transfers/{transfer.pk}/resume/").status_code == 400


def test_a_lost_process_queues_it_again_until_the_attempts_run_out(make_transfer, stand_in, sent, settings):
    settings.CELLSEARCH_MAX_ATTEMPTS = 2
    stand_in(outcome=lambda on_beat: TrialOutcome("lost", message="training process killed by SIGKILL"))
    transfer = make_transfer()

    transfer_run(transfer_id=transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == "pending" and "SIGKILL" in transfer.error and "queued again" in transfer.error
    assert sent[-1] == (transfer.pk, transfer.task_id) and len(sent) == 2

    transfer_run(transfer_id=transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == "failed" and "attempt 2 of 2" in transfer.error and len(sent) == 2


def test_an_abort_fails_it_with_the_message(make_transfer, stand_in):
    def abort(on_beat):
        raise TrialAborted("DatasetNotFoundError: no cifar-10-batches-py")

    stand_in(outcome=abort)
    transfer = make_transfer()
    transfer_run(transfer_id=transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == "failed" and "cifar-10-batches-py" in transfer.error


def test_the_reconciler_requeues_a_silent_transfer_which_resumes(make_transfer, stand_in, calls, sent, settings):
    def die(epoch, on_beat):
        if epoch == 3:
            raise SystemExit  # the worker dies after epoch 2's checkpoint

    stand_in(between=die)
    transfer = make_transfer()
    with pytest.raises(SystemExit):
        transfer_run(transfer_id=transfer.pk)
    old = timezone.now() - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1)
    Transfer.objects.filter(pk=transfer.pk).update(heartbeat_at=old)

    assert transfers_reconcile()["requeued"] == [transfer.pk]
    transfer.refresh_from_db()
    assert transfer.status == "pending" and sent[-1] == (transfer.pk, transfer.task_id)
    assert "stopped beating" in transfer.error

    stand_in()
    transfer_run(transfer_id=transfer.pk)
    transfer.refresh_from_db()
    assert calls[-1]["start"] == 3 and transfer.status == "finished"
    assert [e["epoch"] for e in transfer.epochs] == [1, 2, 3]


def test_the_reconciler_pauses_or_fails_a_silent_transfer(make_transfer, settings):
    old = timezone.now() - timedelta(seconds=settings.CELLSEARCH_HEARTBEAT_TIMEOUT + 1)
    pausing, spent = make_transfer(), make_transfer()
    Transfer.objects.filter(pk=pausing.pk).update(status="running", heartbeat_at=old, attempts=1,
                                                  pause_requested=True)
    Transfer.objects.filter(pk=spent.pk).update(status="running", heartbeat_at=old,
                                                attempts=settings.CELLSEARCH_MAX_ATTEMPTS)

    done = transfers_reconcile()

    assert done["paused"] == [pausing.pk] and done["failed"] == [spent.pk] and done["requeued"] == []
    assert Transfer.objects.get(pk=pausing.pk).status == "paused"
    assert Transfer.objects.get(pk=spent.pk).status == "failed"


def test_the_reconciler_resends_a_lost_message(make_transfer, sent, settings, monkeypatch):
    transfer = make_transfer()
    old = timezone.now() - timedelta(seconds=settings.CELLSEARCH_PENDING_TIMEOUT + 1)
    Transfer.objects.filter(pk=transfer.pk).update(heartbeat_at=old)
    monkeypatch.setattr(dispatch, "gpu_queue_size", lambda: 0)

    assert transfers_reconcile()["requeued"] == [transfer.pk]
    assert sent[-1] == (transfer.pk, Transfer.objects.get().task_id)


def test_reconcile_beat_entry_and_routes(settings):
    assert settings.CELERY_BEAT_SCHEDULE["transfers-reconcile"]["task"] == "transfers.reconcile"
    assert settings.CELERY_TASK_ROUTES["transfers.*"] == {"queue": "control"}


# -- pages ----------------------------------------------------------------------------------------


def test_the_form_launches_and_shows_service_errors(client, user, transfer_source, sent):
    client.force_login(user)
    page = client.get(f"/transfers/new/?cell={transfer_source.cell_hash}")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="transfer-presets"' in html and 'value="nasnet-cifar"' in html and "<svg" in html

    bad = client.post("/transfers/new/", {"trial": transfer_source.pk, "preset": "quick", "dataset": "digits",
                                          "epochs": "0"})
    assert bad.status_code == 200 and 'id="errors-epochs"' in bad.content.decode()
    missing = client.post("/transfers/new/", {"trial": transfer_source.pk, "preset": "nasnet-cifar",
                                              "dataset": "cifar10"})
    assert 'id="errors-dataset"' in missing.content.decode() and not Transfer.objects.exists()

    done = client.post("/transfers/new/", {"trial": transfer_source.pk, "preset": "quick", "dataset": "digits",
                                           "epochs": "2", "nesterov": "false"})
    transfer = Transfer.objects.get()
    assert done.status_code == 302 and done["Location"] == f"/transfers/{transfer.pk}/"
    assert transfer.config["epochs"] == 2 and transfer.config["nesterov"] is False and len(sent) == 1


def test_detail_live_list_and_steering_pages(client, user, make_transfer, stand_in, transfer_source):
    client.force_login(user)
    transfer = make_transfer()
    page = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in page and "epochs-data" in page and "<svg" in page
    assert 'id="transfer-pause"' in page
    assert "Train at full size" in client.get(f"/trials/{transfer_source.pk}/").content.decode()
    assert f"/transfers/{transfer.pk}/" in client.get("/transfers/").content.decode()

    assert client.post(f"/transfers/{transfer.pk}/pause/").status_code == 302
    assert 'id="transfer-resume"' in client.get(f"/transfers/{transfer.pk}/live/").content.decode()
    client.post(f"/transfers/{transfer.pk}/resume/")
    stand_in()
    transfer_run(transfer_id=transfer.pk)
    live = client.get(f"/transfers/{transfer.pk}/live/").content.decode()
    assert "hx-get" not in live.split("</div>")[0]  # the poller stops once ended
    assert 'id="download-best"' in live and 'id="download-cardmd"' in live and "500" in live


# -- a real training ------------------------------------------------------------------------------

#: A transfer that trains in a few seconds on one CPU thread (the exports take the rest, ~15 s).
TINY_TRANSFER = {"preset": "quick", "cells": 1, "base_filters": 4, "epochs": 2, "batch_size": 128,
                 "device": "cpu", "drop_path_keep": 1.0, "auxiliary_weight": 0.0}


@pytest.mark.slow
def test_a_real_tiny_transfer_trains_exports_and_loads(make_transfer, api, settings):
    import io

    import torch

    from searchcore.checkpoints import load_model

    # The tests' stall limits stay as they are (5 s heartbeat timeout): the ~15 s of exports after
    # the last epoch beat from a thread, so the supervisor does not take them for a hang.
    transfer = make_transfer(**TINY_TRANSFER)
    transfer_run(transfer_id=transfer.pk)

    transfer.refresh_from_db()
    assert transfer.status == "finished", transfer.error
    assert [e["epoch"] for e in transfer.epochs] == [1, 2] and transfer.checkpoint_epoch == 2
    assert 0 <= transfer.best_val_acc <= 1 and transfer.test_acc is not None and transfer.params > 0
    assert transfer.exports["onnx"]["ok"] and transfer.exports["torchscript"]["ok"]
    assert transfer.model_card["compute"]["gpus"] == 0 and "(CPU)" in transfer.model_card["compute"]["hardware"]

    files = api.get(f"/api/transfers/{transfer.pk}/").json()["files"]
    assert set(files) == {"best", "last", "onnx", "torchscript", "genotype", "card.md", "card.json"}
    best = b"".join(api.get(files["best"]).streaming_content)
    checkpoint = torch.load(io.BytesIO(best), weights_only=True)
    assert checkpoint["genotype"] == transfer.genotype and checkpoint["format"] == "cellsearch.checkpoint/1"
    assert torch.load(io.BytesIO(b"".join(api.get(files["last"]).streaming_content)), weights_only=True)["epoch"] == 2
    with default_storage.open(transfer.best_checkpoint.name) as f:
        path = f.name
    model = load_model(path)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    scripted = torch.jit.load(io.BytesIO(b"".join(api.get(files["torchscript"]).streaming_content)))
    assert scripted(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    assert len(b"".join(api.get(files["onnx"]).streaming_content)) > 1000


def test_the_form_starts_from_the_quick_preset_and_needs_a_cell(client, user, transfer_source):
    client.force_login(user)
    html = client.get(f"/transfers/new/?trial={transfer_source.pk}").content.decode()
    assert '<option value="quick" selected>' in html
    assert 'name="epochs" value="10"' in html and 'name="base_filters" value="8"' in html
    assert '<option value="true" selected>yes</option>' in html  # nesterov, from the preset's defaults
    response = client.get("/transfers/new/")
    assert response.status_code == 302 and response["Location"] == "/cells/"
