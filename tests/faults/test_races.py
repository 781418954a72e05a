"""Races (issue 17): four gpu workers finish trials at once, many times over, while control
steps run concurrently and twice over (redelivered messages) and a fifth process runs
nothing but control steps. Control steps must never put more than `parallelism` trials in
flight, never dispatch a trial twice and never tell a result twice.

Each worker is a real OS process (this module run as a script) on the test database: it picks
a pending trial of the search, runs it through the real `trial_run` (claim, then the finishing
path) with the training replaced by an instant fake result, then runs the control step (half
the time twice: a redelivered message); an idle worker now and then runs one too.
Nothing reaches a broker: in every child the dispatch functions log what they would send once
the transaction commits, and the strategy's `tell` logs each committed tell. The test process
samples the trials in flight meanwhile, then counts the logs. The run is bounded in time
(RUN_SECONDS after every child is ready), and must make progress to pass.

The top level imports nothing of Django: the children set it up themselves.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
GPU_WORKERS = 4
PARALLELISM = 4
BUDGET = 400
#: How long the children race once all of them are ready (their start: importing torch, about
#: 10 s on a quiet 2-core machine; up to START_SECONDS without shortening the race).
RUN_SECONDS = 20
START_SECONDS = 20
MIN_RUN_SECONDS = 12
READY_SECONDS = 90
#: A small population with frequent identity copies, so repeats of a cell (copied at once, or
#: waiting on a trial in flight) race as well.
STRATEGY_OPTIONS = {"population_size": 8, "sample_size": 4, "identity_probability": 0.3}


# -- the children -------------------------------------------------------------------------------


def _child(role: str, search_id: int, folder: Path) -> None:
    """A gpu worker ("gpu") or a control worker ("control"), logging to folder/<name>.jsonl."""
    import django

    django.setup()
    import torch  # noqa: F401 - imported before the start, as a warm worker has it
    from django.db import connections, transaction

    import searchcore.strategies.evolution  # noqa: F401
    from searchcore import runner
    from searchcore.results import TrainResult
    from searchcore.spaces import parse_genotype
    from searchcore.strategies.base import Strategy
    from webapp import dispatch
    from webapp.searches.models import Search
    from webapp.searches.services.control import search_advance
    from webapp.trials.models import Trial
    from webapp.trials.services import trial_run

    name = f"{role}-{os.getpid()}"
    log = open(folder / f"{name}.jsonl", "a", buffering=1)  # noqa: SIM115 - open for the whole run

    def record(**event) -> None:
        log.write(json.dumps({**event, "t": time.time()}) + "\n")

    def queue_train_trials(*, trials):
        def sent() -> None:
            in_flight = Trial.objects.filter(search_id=search_id, status__in=Trial.IN_FLIGHT).count()
            for trial_id, task_id in trials:
                record(ev="dispatch", trial=trial_id, task=task_id, in_flight=in_flight)

        if trials:
            transaction.on_commit(sent)

    dispatch.queue_train_trials = queue_train_trials
    dispatch.queue_advance_search = lambda *, search_id: transaction.on_commit(lambda: record(ev="advance_queued"))
    dispatch.queue_fail_search = lambda *, search_id, error: transaction.on_commit(
        lambda: record(ev="fail_search", error=error))

    real_tell = Strategy.tell

    def tell(self, trial_id, reward):
        real_tell(self, trial_id, reward)
        transaction.on_commit(lambda: record(ev="tell", index=trial_id))

    Strategy.tell = tell

    def run_trial(genotype, config, **kwargs):
        reward = int(parse_genotype(genotype).canonical_hash()[:8], 16) / 0xFFFFFFFF  # the cell's own
        return runner.TrialOutcome(status="finished", result=TrainResult(
            reward=reward, val_acc=reward, best_val_acc=reward, test_acc=None, params=1000, mult_adds=2000,
            epochs=[], stopped=False, seconds=0.0))

    runner.run_trial = run_trial

    def step() -> None:
        queued = search_advance(search_id=search_id)
        record(ev="step", queued=len(queued))

    record(ev="ready")
    start = folder / "start"
    while not start.exists():
        time.sleep(0.02)
    deadline = float(start.read_text())
    rng = random.Random(os.getpid())
    while time.time() < deadline:
        if Search.objects.filter(pk=search_id, status__in=Search.ENDED).exists():
            break
        if role == "control":
            step()
            time.sleep(rng.random() * 0.01)
            continue
        pending = list(Trial.objects.filter(search_id=search_id, status=Trial.Status.PENDING)
                       .values_list("pk", flat=True))
        if not pending:  # look again soon, so idle workers pounce on the same new trial; now and
            if rng.random() < 0.3:  # then run a step, as a redelivered message or a nudge would
                step()
            time.sleep(rng.random() * 0.005)
            continue
        trial_id = min(pending) if rng.random() < 0.5 else rng.choice(pending)  # often the same one
        trial = trial_run(trial_id=trial_id)
        record(ev="run", trial=trial_id, claimed=trial is not None)
        if trial is not None:
            step()  # the step its finish queued
            if rng.random() < 0.5:
                step()  # the same message redelivered
    record(ev="done")
    log.close()
    connections.close_all()
    os._exit(0)  # torch's slow teardown, skipped: nothing is left to write


# -- the test -----------------------------------------------------------------------------------


def _events(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


def test_racing_workers_never_dispatch_twice_exceed_parallelism_or_tell_twice(user, tmp_path, monkeypatch):
    import io

    from django.db import connection

    from tests.conftest import _database_url
    from webapp.celery import app
    from webapp.searches.models import Search
    from webapp.searches.services import search_create
    from webapp.trials.models import Trial

    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)  # search_create's first step
    search = search_create(user=user, space="nasnet", strategy="evolution", dataset="digits", budget=BUDGET,
                           parallelism=PARALLELISM, seed=0, strategy_options=dict(STRATEGY_OPTIONS),
                           proxy={"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128})
    folder = tmp_path / "logs"
    folder.mkdir()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test", "OMP_NUM_THREADS": "1",
           "DATABASE_URL": _database_url(connection.settings_dict),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    roles = ["gpu"] * GPU_WORKERS + ["control"]
    began, began_wall = time.monotonic(), time.time()
    children = []
    for number, role in enumerate(roles):
        err = open(tmp_path / f"child-{number}.err", "wb")  # noqa: SIM115 - the child writes it
        children.append(subprocess.Popen([sys.executable, __file__, role, str(search.pk), str(folder)],
                                         cwd=ROOT, env=env, stdout=err, stderr=subprocess.STDOUT))
        err.close()

    def errors() -> str:
        return "\n".join(f"child {n} ({roles[n]}), exit {c.returncode}:\n"
                         f"{(tmp_path / f'child-{n}.err').read_text(errors='replace')[-3000:]}"
                         for n, c in enumerate(children))

    def logged(event: str) -> int:
        return sum(path.read_text().count(f'"ev": "{event}"') for path in folder.glob("*.jsonl"))

    import torch  # while the children start: it reads the strategy state at the end

    try:
        while logged("ready") < len(roles):
            assert time.monotonic() < began + READY_SECONDS and all(c.poll() is None for c in children), errors()
            time.sleep(0.1)
        # Race RUN_SECONDS, less what a slow start took beyond START_SECONDS (never under
        # MIN_RUN_SECONDS), so the test stays short on a loaded machine.
        run = max(MIN_RUN_SECONDS, min(RUN_SECONDS, START_SECONDS + RUN_SECONDS - (time.monotonic() - began)))
        started = time.time()
        (folder / "start.tmp").write_text(str(started + run))
        (folder / "start.tmp").rename(folder / "start")

        max_in_flight, samples, checked = 0, 0, time.monotonic()
        while time.time() < started + run + 30:
            in_flight = Trial.objects.filter(search_id=search.pk, status__in=Trial.IN_FLIGHT).count()
            max_in_flight, samples = max(max_in_flight, in_flight), samples + 1
            if time.monotonic() > checked + 0.5:
                if logged("done") + sum(c.poll() is not None for c in children) >= len(roles):
                    break
                checked = time.monotonic()
            time.sleep(0.01)
        for child in children:
            child.wait(max(1.0, started + run + 40 - time.time()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"a child did not end 40 s after the deadline\n{errors()}")
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
    assert all(c.returncode == 0 for c in children), errors()
    ended = time.time()

    events = _events(folder)
    seconds = max(e["t"] for e in events if e["ev"] == "done") - started
    kinds = Counter(e["ev"] for e in events)
    dispatched = Counter(e["trial"] for e in events if e["ev"] == "dispatch")
    told = Counter(e["index"] for e in events if e["ev"] == "tell")
    claimed = Counter(e["trial"] for e in events if e["ev"] == "run" and e["claimed"])
    dispatch_in_flight = max((e["in_flight"] for e in events if e["ev"] == "dispatch"), default=0)
    search.refresh_from_db()
    trials = list(search.trials.order_by("index"))
    print(f"\nraces: {seconds:.1f} s of racing ({run:.0f} s allowed, {started - began_wall:.1f} s to start, "
          f"{ended - started - seconds:.1f} s to exit), "
          f"{search.trials_issued} trials issued ({search.status}), "
          f"{kinds['step']} control steps, {kinds['dispatch']} dispatches, {kinds['tell']} tells, "
          f"{sum(claimed.values())} claims won and {kinds['run'] - sum(claimed.values())} lost, "
          f"{sum(t.reused_from_id is not None for t in trials)} repeats, max in flight {max_in_flight} "
          f"sampled ({samples} samples) and {dispatch_in_flight} at a dispatch; duplicates: "
          f"{sum(n - 1 for n in dispatched.values())} dispatches, {sum(n - 1 for n in told.values())} tells, "
          f"{sum(n - 1 for n in claimed.values())} claims")

    assert kinds["fail_search"] == 0 and search.status != Search.Status.FAILED, search.error
    # It raced: enough steps and trials that a pass means something.
    assert kinds["step"] >= 50 and sum(t.status == Trial.Status.FINISHED for t in trials) >= 40, kinds
    # Never more than `parallelism` in flight: sampled, and right after each dispatching commit.
    assert max_in_flight <= PARALLELISM and dispatch_in_flight <= PARALLELISM
    # Every trial asked once, in order, counted once.
    assert [t.index for t in trials] == list(range(search.trials_issued))
    # Every trial that trains was dispatched exactly once, with the task id stored on it, and
    # claimed once; the copies of a result were never dispatched.
    assert all(n == 1 for n in dispatched.values()), [t for t, n in dispatched.items() if n > 1]
    assert set(dispatched) == {t.pk for t in trials if t.reused_from_id is None}
    tasks = {e["trial"]: e["task"] for e in events if e["ev"] == "dispatch"}
    assert all(t.task_id == tasks[t.pk] for t in trials if t.pk in tasks)
    assert all(n == 1 for n in claimed.values()) and all(t.attempts <= 1 for t in trials)
    # Every result told exactly once, and only the results marked told.
    assert all(n == 1 for n in told.values()), [i for i, n in told.items() if n > 1]
    assert set(told) == {t.index for t in trials if t.told}
    assert all(t.status in Trial.DONE for t in trials if t.told)
    # The strategy's saved state agrees with the trials.
    state = torch.load(io.BytesIO(bytes(search.strategy_state)), weights_only=True)
    assert state["next_trial_id"] == search.trials_issued
    assert set(state["pending"]) == {t.index for t in trials if not t.told}
    rewarded = sum(t.reward is not None for t in trials if t.told)
    population = state["algorithm"]["population"]
    assert len(population) == min(STRATEGY_OPTIONS["population_size"], rewarded)
    hashes = {t.cell_hash: t.reward for t in trials if t.told}
    assert all(hashes.get(member["cell_hash"]) == member["reward"] for member in population)
    if search.trials_issued == BUDGET and not any(not t.told for t in trials):
        assert search.status == Search.Status.FINISHED
    if search.status == Search.Status.FINISHED:
        assert search.trials_issued == BUDGET and all(t.told for t in trials)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    _child(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
