"""The one failure policy (searchcore.runner.run_trial) that the CLI loop and the workers share:
how each way a training can end becomes a finished, failed, lost or stopped trial, or aborts
the run. In-process trainings and a stand-in for the child process keep these fast; the real
processes are tests/faults/test_runner.py's."""

from __future__ import annotations

import pytest

import searchcore.runner
from searchcore.errors import ConfigError, DatasetNotFoundError
from searchcore.known import get_known
from searchcore.proxy import ProxyConfig
from searchcore.results import TrainingDivergedError, TrainResult
from searchcore.runner import (
    ChildError,
    RunnerPolicy,
    TrainingProcessError,
    TrainingStopped,
    TrialAborted,
    TrialFailedError,
    run_trial,
)

CELL = get_known("nasnet-a")
CONFIG = ProxyConfig()
RESULT = TrainResult(reward=0.5, val_acc=0.5, best_val_acc=0.5, test_acc=None, params=1, mult_adds=1, epochs=[],
                     stopped=False, seconds=0.0)


class OutOfMemoryError(RuntimeError):
    """Named like torch's (and CUDA's): the policy tells it by name, so the parent needs no torch."""


def raising(exc):
    def train(genotype, config, **kwargs):
        raise exc

    return train


def test_a_result_finishes_the_trial():
    outcome = run_trial(CELL, CONFIG, train=lambda genotype, config, **kwargs: RESULT)
    assert outcome.status == "finished" and outcome.result == RESULT


@pytest.mark.parametrize(("exc", "message"), [
    (TrainingDivergedError("the loss became nan in epoch 1"), "TrainingDivergedError: the loss became nan in epoch 1"),
    (OutOfMemoryError("CUDA out of memory"), "OutOfMemoryError: CUDA out of memory"),
    (MemoryError("no room"), "MemoryError: no room"),
])
def test_the_cells_own_failure_fails_the_trial(exc, message):
    outcome = run_trial(CELL, CONFIG, train=raising(exc))
    assert (outcome.status, outcome.result, outcome.message) == ("failed", None, message)


@pytest.mark.parametrize(("exc", "message"), [
    (ConfigError("proxy config: CUDA is not available"), "ConfigError: proxy config: CUDA is not available"),
    (DatasetNotFoundError("no CIFAR-10 batches in /nowhere"), "DatasetNotFoundError: no CIFAR-10 batches"),
    (KeyError("a bug"), "KeyError: 'a bug'"),
])
def test_anything_else_in_process_aborts_the_run(exc, message):
    with pytest.raises(TrialAborted, match=message) as raised:
        run_trial(CELL, CONFIG, train=raising(exc))
    assert raised.value.__cause__.__cause__ is exc  # run_trial's TrialAborted, from the attempt's ChildError


def test_on_beat_stops_an_in_process_training():
    def train(genotype, config, *, on_progress, **kwargs):
        while True:
            on_progress()

    outcome = run_trial(CELL, CONFIG, train=train, on_beat=lambda progress: progress.steps < 5,
                        policy=RunnerPolicy(beat_seconds=1e-9))
    assert outcome.status == "stopped"


@pytest.fixture
def child(monkeypatch):
    """Stand in for the child process: each attempt raises (or returns) the next of `ends`."""
    attempts = []

    def use(*ends):
        def attempt(genotype, config, **kwargs):
            end = ends[len(attempts)]
            attempts.append(kwargs)
            if isinstance(end, BaseException):
                raise end
            return end

        monkeypatch.setattr(searchcore.runner, "train_in_subprocess", attempt)
        return attempts

    return use


@pytest.mark.parametrize(("end", "status", "message"), [
    (TrialFailedError("TrainingDivergedError: nan"), "failed", "TrainingDivergedError: nan"),
    (TrainingProcessError("training process crashed: signal 6 (SIGABRT)"), "lost",
     "training process crashed: signal 6 (SIGABRT)"),
    (TrainingStopped("training stopped: its caller asked"), "stopped", "training stopped: its caller asked"),
])
def test_a_child_process_ending_is_judged_alike(child, end, status, message):
    attempts = child(end)
    outcome = run_trial(CELL, CONFIG)
    assert (outcome.status, outcome.message) == (status, message) and len(attempts) == 1


@pytest.mark.parametrize("end", [
    ChildError("FileNotFoundError: no CIFAR-10 batches in /nowhere"),  # in the child
    FileNotFoundError("no CIFAR-10 batches in /nowhere"),  # in this process, around the child
])
def test_any_other_exception_around_a_child_aborts_the_run(child, end):
    child(end)
    with pytest.raises(TrialAborted, match="^FileNotFoundError: no CIFAR-10 batches in /nowhere$"):
        run_trial(CELL, CONFIG, retry_lost=True)


def test_retry_lost_tries_again_then_fails_the_trial_counting_attempts(child):
    crash = TrainingProcessError("training process hung")
    attempts = child(crash, crash, crash)
    retries = []
    outcome = run_trial(CELL, CONFIG, retry_lost=True, policy=RunnerPolicy(max_attempts=3),
                        on_retry=lambda attempt, reason: retries.append((attempt, reason)))
    assert (outcome.status, outcome.message) == ("failed", "training process hung (attempt 3 of 3)")
    assert len(attempts) == 3 and retries == [(1, "training process hung"), (2, "training process hung")]


def test_retry_lost_finishes_a_trial_whose_retry_succeeds(child):
    child(TrainingProcessError("training process crashed"), RESULT)
    outcome = run_trial(CELL, CONFIG, retry_lost=True)
    assert outcome.status == "finished" and outcome.result == RESULT
