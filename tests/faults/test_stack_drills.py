"""Fault drills on the whole stack, every part a real process (tests/faults/stack.py): Redis
without persistence, two gpu workers, the control worker with beat, gunicorn, and the test's
database (SQLite here, PostgreSQL in CI's second pass). Searches and transfers are launched
through the web server's API, as a user would.

Each drill kills or restarts parts of the stack mid-run, then checks that the search ends with
exactly its budget of trials, none lost, none trained twice to completion, and a strategy state
that holds every result exactly once.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import WorkerProcess, wait_until
from tests.faults.stack import Stack, start_stack
from tests.webapp.conftest import TINY_PROXY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

#: A proxy whose trials train for a few seconds (two epochs), long enough to be killed in.
DRILL_PROXY = {**TINY_PROXY, "epochs": 2}


@pytest.fixture
def media(tmp_path, settings) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    settings.MEDIA_ROOT = str(folder)
    return folder


@pytest.fixture
def small_disk(tmp_path, settings):
    """MEDIA_ROOT on a 64 MB tmpfs (a transfer keeps two 3 MB checkpoints, and uploads the next
    before it deletes the last), and `fill()`/`free()` to take its space and give it back."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for MEDIA_ROOT needs root (CI runs as root)")
    folder = tmp_path / "media"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], check=True)
    settings.MEDIA_ROOT = str(folder)
    filler = folder / "filler"

    class Disk:
        path = folder

        @staticmethod
        def fill() -> None:
            """Leave no room at all: every write that follows fails with ENOSPC."""
            with open(filler, "ab") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass

        @staticmethod
        def free() -> None:
            filler.unlink(missing_ok=True)

    try:
        yield Disk
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def stack(tmp_path, user, request):
    """The whole stack (see the module docstring) on this test's MEDIA_ROOT; stopped after it."""
    media_root = Path(request.getfixturevalue("small_disk").path if "small_disk" in request.fixturenames
                      else request.getfixturevalue("media"))
    started = start_stack(tmp_path=tmp_path, media=media_root, user=user,
                          extra_env=getattr(request, "param", None))
    try:
        yield started
    finally:
        started.stop()


# -- helpers ------------------------------------------------------------------------------------


def launch(stack: Stack, **overrides) -> int:
    body = {"name": "drill", "space": "nasnet", "strategy": "evolution", "dataset": "digits", "budget": 6,
            "parallelism": 2, "seed": 11, "proxy": DRILL_PROXY,
            "strategy_options": {"population_size": 20, "sample_size": 2}, **overrides}
    status, answer = stack.api("POST", "/api/searches/", body)
    assert status == 201, answer
    return answer["id"]


def worker_of(stack: Stack, worker_name: str) -> WorkerProcess:
    """The stack's gpu worker whose pool process is `worker_name` ("host:pid")."""
    pid = int(worker_name.rsplit(":", 1)[1])
    with open(f"/proc/{pid}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
    return next(w for w in stack.gpu if w.proc is not None and w.proc.pid in (pid, parent))


def search_ended(search_id: int):
    from webapp.searches.models import Search

    search = Search.objects.get(pk=search_id)
    return search if search.status in Search.ENDED else None


def completed_trainings(stack: Stack) -> int:
    """Trainings that ran to completion on the gpu workers, from every log of every start."""
    logs = [path.read_text(errors="replace") for w in stack.gpu for path in w.log_dir.glob(f"{w.name}-*.log")]
    return sum(len(re.findall(r"trials\.train_trial\[[0-9a-f-]+\] succeeded in [0-9.]+s: 'finished'", log))
               for log in logs)


def assert_whole(stack: Stack, search_id: int, *, budget: int, failed: int = 0) -> list:
    """The search finished with exactly `budget` trials, each told once and trained to completion
    at most once, `failed` of them failed, and its strategy state holds every result once."""
    from webapp.searches.models import Search
    from webapp.trials.models import Trial

    search = Search.objects.get(pk=search_id)
    assert search.status == Search.Status.FINISHED, (search.status, search.error, stack.logs())
    trials = list(search.trials.order_by("index"))
    assert search.trials_issued == budget and [t.index for t in trials] == list(range(budget))
    assert all(t.told for t in trials)
    assert sum(t.status == Trial.Status.FAILED for t in trials) == failed
    assert sum(t.status == Trial.Status.FINISHED for t in trials) == budget - failed
    trained = [t for t in trials if t.status == Trial.Status.FINISHED and t.reused_from_id is None]
    assert completed_trainings(stack) == len(trained), "a trial was trained to completion twice (or lost)"

    state = torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True)
    assert state["next_trial_id"] == budget and state["pending"] == {}
    told = sorted((m["cell_hash"], m["reward"]) for m in state["algorithm"]["population"])
    assert told == sorted((t.cell_hash, t.reward) for t in trials if t.status == Trial.Status.FINISHED)
    return trials


# -- searches -----------------------------------------------------------------------------------


def test_a_search_survives_its_gpu_workers_killed_three_times(stack):
    """SIGKILL the gpu worker training a trial, three times in one search, restarting it at
    once as a rebooted machine would: each killed trial is trained again from scratch by
    whichever worker takes it, and the search ends whole."""
    from webapp.trials.models import Trial

    search_id = launch(stack, budget=5)
    victims: list[int] = []
    for _ in range(3):
        victim = wait_until(
            lambda: Trial.objects.filter(search_id=search_id, status=Trial.Status.RUNNING, attempts=1)
            .exclude(epochs=[]).exclude(pk__in=victims).first(),
            180, "a trial in training", logs=stack.logs)
        worker = worker_of(stack, victim.worker)
        stack.kill(worker.name, worker)
        victims.append(victim.pk)
        worker.launch()  # back up in a few seconds, while the other worker trains on

    wait_until(lambda: search_ended(search_id), 300, "the search to end", logs=stack.logs)
    trials = assert_whole(stack, search_id, budget=5)
    killed = [t for t in trials if t.pk in victims]
    assert len(killed) == 3 and all(t.attempts == 2 and len(t.epochs) == 2 for t in killed)
    assert sum(stack.kills.values()) == 3


@pytest.mark.postgres
def test_a_search_survives_its_control_worker_killed_inside_a_control_step(stack):
    """Hold the control worker inside a control step (after it told a result, issued a trial and
    wrote the strategy state, before the commit) and SIGKILL it there: the step's writes roll
    back as one, and the restarted worker's reconciler replays it, telling that result once."""
    from webapp.searches.models import Search
    from webapp.trials.models import Trial

    search_id = launch(stack, budget=3, parallelism=1)
    wait_until(lambda: Trial.objects.filter(search_id=search_id, status=Trial.Status.RUNNING).exists(), 120,
               "the first trial to train", logs=stack.logs)
    stack.hold_flag.touch()  # the step after this trial ends holds
    held = stack.hold_flag.with_suffix(".held")
    wait_until(held.exists, 120, "the control step to be held", logs=stack.logs)
    stack.kill("control", stack.control)
    stack.hold_flag.unlink()

    search = Search.objects.get(pk=search_id)
    assert search.trials_issued == 1 and search.trials.count() == 1  # the held step left nothing
    assert search.trials.get().status == Trial.Status.FINISHED and not search.trials.get().told
    stack.control.start()

    wait_until(lambda: search_ended(search_id), 240, "the search to end", logs=stack.logs)
    assert_whole(stack, search_id, budget=3)


@pytest.mark.parametrize("stack", [{"CELLSEARCH_PENDING_TIMEOUT": "4"}], indirect=True)
def test_a_search_survives_redis_and_the_web_server_restarted(stack):
    """Restart Redis (no persistence: the queued trials' messages are gone) and the web server
    while trials train and others wait in the queue: the reconciler queues the lost ones again,
    the API answers as before, and the search ends whole."""
    from webapp.trials.models import Trial

    search_id = launch(stack, budget=4, parallelism=4)
    wait_until(lambda: Trial.objects.filter(search_id=search_id, status=Trial.Status.RUNNING).count() == 2
               and Trial.objects.filter(search_id=search_id, status=Trial.Status.PENDING).count() == 2,
               120, "two trials training and two queued", logs=stack.logs)
    stack.kill("redis", stack.redis)
    stack.redis.start()
    stack.kill("web", stack.web)
    stack.web.start()
    status, answer = stack.api("GET", f"/api/searches/{search_id}/")
    assert status == 200 and answer["id"] == search_id

    wait_until(lambda: search_ended(search_id), 300, "the search to end", logs=stack.logs)
    assert_whole(stack, search_id, budget=4)
    status, answer = stack.api("GET", f"/api/searches/{search_id}/trials/")
    assert status == 200 and [t["index"] for t in answer["results"]] == list(range(4))


def test_a_full_disk_fails_the_trial_writing_its_checkpoint_and_the_search_goes_on(small_disk, stack):
    """MEDIA_ROOT fills up while a trial's checkpoint is written: that trial fails with the
    reason, no partial file is left, and once there is room again the search goes on to its
    budget, storing the other trials' checkpoints."""
    from webapp.trials.models import Trial

    small_disk.fill()
    search_id = launch(stack, budget=3, parallelism=1, keep_checkpoints=True, proxy=TINY_PROXY)
    first = wait_until(lambda: Trial.objects.filter(search_id=search_id, index=0, status=Trial.Status.FAILED).first(),
                       120, "the first trial to fail on the full disk", logs=stack.logs)
    assert "its checkpoint was not kept" in first.error and "No space left on device" in first.error
    assert not first.checkpoint and not list((small_disk.path / "checkpoints").rglob("*.pt"))
    small_disk.free()

    wait_until(lambda: search_ended(search_id), 240, "the search to end", logs=stack.logs)
    trials = assert_whole(stack, search_id, budget=3, failed=1)
    stored = [t for t in trials if t.status == Trial.Status.FINISHED and t.reused_from_id is None]
    assert stored and all(t.checkpoint and (small_disk.path / t.checkpoint.name).stat().st_size > 0 for t in stored)


# -- a transfer ---------------------------------------------------------------------------------


def test_a_transfer_survives_every_drill_and_ends_with_the_uninterrupted_weights(
        small_disk, stack, make_search, tmp_path):
    """One transfer through every drill, resuming from its last stored checkpoint each time:
    its gpu worker SIGKILLed; Redis, the control worker and the web server restarted; the disk
    full while a checkpoint is written (it pauses with the reason, and resumes through the API
    once there is room). Its epochs are each recorded once and its final weights equal those of
    an uninterrupted run, bit for bit."""
    from django.core.files.storage import default_storage

    from searchcore.spaces import parse_genotype
    from searchcore.transfer_train import train_transfer
    from webapp.cells.models import Cell
    from webapp.transfers.models import Transfer
    from webapp.transfers.services.training import transfer_config_for_worker
    from webapp.trials.models import Trial

    genotype = {"format": "cellsearch.nasnet/1",
                "normal": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}],
                "reduction": [{"inputs": [0, 1], "ops": ["max_pool_3x3", "identity"], "combine": "add"}]}
    cell = Cell.objects.create(cell_hash=parse_genotype(genotype).canonical_hash(), space="nasnet", genotype=genotype)
    source = make_search()
    source.status = "finished"  # the source search of the transfer's cell; no worker runs it
    source.save()
    Trial.objects.create(search=source, index=0, cell=cell, genotype=genotype, cell_hash=cell.cell_hash,
                         status="finished", reward=0.5)
    status, answer = stack.api("POST", "/api/transfers/", {
        "cell_hash": cell.cell_hash, "preset": "quick", "cells": 1, "base_filters": 4, "epochs": 8,
        "batch_size": 128, "device": "cpu", "seed": 3})
    assert status == 201, answer
    transfer_id = answer["id"]

    def row() -> Transfer:
        return Transfer.objects.get(pk=transfer_id)

    # 1. its gpu worker dies after the first stored checkpoint
    first = wait_until(lambda: (t := row()).checkpoint_epoch >= 1 and t.status == Transfer.Status.RUNNING and t,
                       120, "epoch 1's checkpoint", logs=stack.logs)
    worker = worker_of(stack, first.worker)
    stack.kill(worker.name, worker)
    worker.start()
    wait_until(lambda: (t := row()).attempts > first.attempts and t.status == Transfer.Status.RUNNING, 120,
               "the transfer to be taken again", logs=stack.logs)

    # 2. Redis, the control worker (the reconciler's home) and the web server restart
    stack.kill("redis", stack.redis)
    stack.redis.start()
    for name, process in (("control", stack.control), ("web", stack.web)):
        stack.kill(name, process)
        process.launch()
    stack.control.wait_ready()
    stack.web.wait_ready()

    # 3. the disk fills: the transfer pauses at its last stored checkpoint, with the reason
    at_fill = wait_until(lambda: (t := row()).checkpoint_epoch >= first.checkpoint_epoch + 1 and t, 120,
                         "a checkpoint after the restarts", logs=stack.logs)
    small_disk.fill()
    paused = wait_until(lambda: (t := row()).status != Transfer.Status.RUNNING and t, 120, "the transfer to pause",
                        logs=stack.logs)
    assert paused.status == Transfer.Status.PAUSED, (paused.status, paused.error)
    assert "No space left on device" in paused.error and "free space and resume" in paused.error
    assert paused.checkpoint_epoch >= at_fill.checkpoint_epoch
    assert default_storage.exists(paused.last_checkpoint.name)
    small_disk.free()
    status, answer = stack.api("POST", f"/api/transfers/{transfer_id}/resume/")
    assert status == 200, answer

    done = wait_until(lambda: (t := row()).status in Transfer.ENDED and t, 240, "the transfer to end", logs=stack.logs)
    assert done.status == Transfer.Status.FINISHED, (done.error, stack.logs())
    assert [e["epoch"] for e in done.epochs] == list(range(1, 9)) and done.checkpoint_epoch == 8
    gpu_logs = "".join(p.read_text(errors="replace") for w in stack.gpu for p in w.log_dir.glob(f"{w.name}-*.log"))
    resumes = sorted((int(attempt), int(epoch)) for attempt, epoch in re.findall(
        rf"transfer {transfer_id}, attempt (\d+): resumes after epoch (\d+)", gpu_logs))
    resumed_after = [epoch for _, epoch in resumes]  # by attempt: never from an older checkpoint
    assert len(resumed_after) >= 2 and resumed_after == sorted(resumed_after), resumes

    with default_storage.open(done.last_checkpoint.name) as f:
        resumed = torch.load(io.BytesIO(f.read()), weights_only=True)["model"]
    out = tmp_path / "uninterrupted"
    train_transfer(parse_genotype(genotype), transfer_config_for_worker(done), out_dir=out, exports=())
    uninterrupted = torch.load(out / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed), "resumed weights differ"
    shutil.rmtree(out)
