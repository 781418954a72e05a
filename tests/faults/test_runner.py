"""The trial runner against real process failures: crashes, hangs, kills, a dying parent.

Every failure happens in a real child process (tests/faults/targets.py), so a crash here is
the runner's to report, never pytest's.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import searchcore.runner
from searchcore.known import get_known
from searchcore.proxy import ProxyConfig
from searchcore.runner import (
    ChildError,
    RunnerPolicy,
    TrainingProcessError,
    TrainingStopped,
    TrialAborted,
    TrialFailedError,
    run_trial,
    threads_per_child,
    train_in_subprocess,
)
from searchcore.search import RunDirectory, SearchConfig, run_search

CONFIG = ProxyConfig(cells=1, filters=48, epochs=1, batch_size=32, device="cpu")
#: Hung after 2 s without progress once training (2 x a median epoch, at least 2 s); the children
#: import torch first, which takes a while on a busy machine, so they get a minute to start.
QUICK = RunnerPolicy(stall_factor=2.0, min_stall_seconds=2.0, startup_seconds=60.0, beat_seconds=0.1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def target(monkeypatch):
    """Point the runner's children at a fault from tests/faults/targets.py."""
    monkeypatch.chdir(REPO)  # the child imports tests.faults.targets from here

    def use(name: str) -> None:
        monkeypatch.setattr(searchcore.runner, "DEFAULT_TARGET", f"tests.faults.targets:{name}")

    return use


@pytest.fixture
def fault_file(tmp_path, monkeypatch):
    path = tmp_path / "fault"
    monkeypatch.setenv("CELLSEARCH_FAULT_FILE", str(path))
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead, only not yet reaped
        return f.read().split(") ")[1][0] != "Z"


def train(**kwargs):
    return train_in_subprocess(get_known("nasnet-a"), CONFIG, policy=QUICK, **kwargs)


@pytest.mark.parametrize(("name", "reason"), [
    ("abort_in_second_epoch", r"training process crashed: signal 6 \(SIGABRT\): double free or corruption"),
    ("segfault", r"training process crashed: signal 11 \(SIGSEGV\)"),
    ("killed", r"training process killed: signal 9 \(SIGKILL\), by the kernel's out-of-memory killer"),
    ("exit_without_result", r"training process exited with status 3 without a result"),
])
def test_a_process_that_dies_is_a_readable_process_error(target, name, reason):
    target(name)
    with pytest.raises(TrainingProcessError, match=reason):
        train()


def test_a_hang_after_an_epoch_is_killed_after_a_few_median_epochs(target, fault_file):
    target("hang_after_first_epoch")
    started = time.monotonic()
    with pytest.raises(TrainingProcessError, match=r"training process hung: no progress for \d+ s after epoch 1 "
                                                   r"\(limit 2 s: 2 x its median epoch of 0\.1 s, at least 2 s\); killed"):
        train()
    assert 2 <= time.monotonic() - started < 15
    assert not alive(int(fault_file.read_text()))  # deaf to SIGTERM, and still gone


def test_a_hang_before_the_first_step_is_killed_at_the_startup_limit(target, fault_file):
    target("hang_at_start")
    with pytest.raises(TrainingProcessError, match=r"no sign of life for \d+ s before its first step \(limit 5 s\)"):
        train_in_subprocess(get_known("nasnet-a"), CONFIG, policy=replace(QUICK, startup_seconds=5.0))
    assert not alive(int(fault_file.read_text()))


def test_progress_keeps_a_slow_training_alive_and_on_beat_stops_it_at_once(target, fault_file):
    target("beat_forever")
    beats = []

    def on_beat(progress):
        beats.append((time.monotonic(), progress))
        return len(beats) < 60  # about 6 s of beats: past the stall limit, yet never presumed hung

    with pytest.raises(TrainingStopped):
        train(on_beat=on_beat)
    assert beats[-1][0] - beats[0][0] > 2 * QUICK.min_stall_seconds
    assert [p.steps for _, p in beats] == sorted(p.steps for _, p in beats)
    assert not alive(int(fault_file.read_text()))


def test_the_cells_own_failure_and_a_childs_exception_are_told_apart(target):
    target("diverge")
    with pytest.raises(TrialFailedError, match="TrainingDivergedError: child training diverged"):
        train()
    target("bad_settings")
    with pytest.raises(ChildError, match="FileNotFoundError: no CIFAR-10 batches in /nowhere"):
        train()


def test_retries_get_past_a_crash_and_report_each(target, fault_file):
    target("crash_once")
    retries = []
    outcome = run_trial(get_known("nasnet-a"), CONFIG, policy=QUICK, retry_lost=True,
                        on_retry=lambda attempt, reason: retries.append((attempt, reason)))
    assert outcome.status == "finished" and outcome.result.reward == 0.25
    assert [attempt for attempt, _ in retries] == [1] and "signal 6 (SIGABRT)" in retries[0][1]


def test_after_the_last_attempt_the_trial_fails_counting_them(target):
    target("segfault")
    outcome = run_trial(get_known("nasnet-a"), CONFIG, policy=RunnerPolicy(max_attempts=2), retry_lost=True)
    assert outcome.status == "failed"
    assert re.fullmatch(r"training process crashed: signal 11 \(SIGSEGV\).* \(attempt 2 of 2\)", outcome.message)


def test_without_retries_a_lost_process_is_lost_once(target):
    target("segfault")
    outcome = run_trial(get_known("nasnet-a"), CONFIG, policy=QUICK, retry_lost=False)
    assert outcome.status == "lost" and outcome.message.startswith("training process crashed: signal 11")


def test_a_childs_exception_aborts_the_cli_search_and_leaves_the_trial_pending(target, tmp_path):
    target("bad_settings")
    config = SearchConfig(space="nasnet", strategy="random", budget=2, proxy=CONFIG)
    with pytest.raises(TrialAborted, match="FileNotFoundError: no CIFAR-10 batches in /nowhere"):
        run_search(config, tmp_path / "run", progress=False, policy=QUICK)
    run = RunDirectory(tmp_path / "run")
    assert run.load_trials() == [] and list(run.load_state()["pending"]) == [0]


def test_the_child_dies_with_its_parent(fault_file, tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", (
        "import searchcore.runner as r\n"
        "from searchcore.known import get_known\nfrom searchcore.proxy import ProxyConfig\n"
        "r.DEFAULT_TARGET = 'tests.faults.targets:hang_at_start'\n"
        "r.train_in_subprocess(get_known('nasnet-a'), ProxyConfig())\n")], cwd=REPO)
    try:
        for _ in range(200):
            if fault_file.exists() and fault_file.read_text().strip():
                break
            time.sleep(0.05)
        child = int(fault_file.read_text())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(100):
            if not alive(child):
                break
            time.sleep(0.05)
        assert not alive(child)
    finally:
        parent.kill()
        parent.wait()


def test_a_crashing_cell_fails_its_trial_and_the_cli_search_goes_on(target, tmp_path):
    target("abort_in_second_epoch")
    config = SearchConfig(space="nasnet", strategy="random", budget=2, proxy=CONFIG)
    records = run_search(config, tmp_path / "run", progress=False, policy=RunnerPolicy(max_attempts=2))
    assert [r.status for r in records] == ["failed", "failed"]
    assert all(r.error.startswith("training process crashed: signal 6 (SIGABRT)") and r.error.endswith(
        "(attempt 2 of 2)") for r in records)


def test_a_real_training_reports_epochs_and_a_checkpoint(tmp_path):
    epochs = []
    result = train_in_subprocess(get_known("nasnet-a"), CONFIG, on_epoch=epochs.append, num_threads=1,
                                 checkpoint_path=tmp_path / "trial.pt")
    assert [m.epoch for m in epochs] == [1] and result.epochs == epochs
    assert 0 <= result.reward <= 1 and result.params > 0
    checkpoint = torch.load(tmp_path / "trial.pt", weights_only=True)
    assert checkpoint["genotype"] == get_known("nasnet-a").to_dict() and checkpoint["reward"] == result.reward


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                    reason="the bug is in oneDNN's AVX2 kernels")
def test_the_real_onednn_crash_is_caught_as_a_process_error(target, monkeypatch):
    """oneDNN's own heap corruption, not a simulated one: the child dies of it (glibc aborts, or
    the corrupted heap faults) and the runner says so; this pytest worker lives on."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    target("strided_1x1_backward")
    with pytest.raises(TrainingProcessError, match=r"training process crashed: signal (6 \(SIGABRT\)|11 \(SIGSEGV\))"):
        train()


def test_a_training_gets_the_threads_it_is_given_whatever_the_environment_says(target, monkeypatch):
    """A worker sets its own threads per training: torch would give each child every core."""
    target("report_threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    given = train(num_threads=1)
    assert (given.params, given.mult_adds) == (1, 1)
    left = train()  # no number: the environment's
    assert left.mult_adds == 8


def test_threads_per_child_shares_the_cores():
    assert [threads_per_child(children, cores=8) for children in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert threads_per_child(1) == len(os.sched_getaffinity(0))
