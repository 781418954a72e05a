"""Trains one trial in a child process that its caller watches and can kill.

Native code can take a process down (a heap corruption aborts it) or spin forever, and
neither an exception handler nor a heartbeat thread notices. So a trial trains in
`python -m searchcore.runner`, a process of its own, and its parent — the CLI loop or a
Celery worker, neither of which needs torch for this — supervises it:

- the child reports proof of life from the training loop (a beat at most every
  `beat_seconds`), each epoch, and then its result or its error, as JSON lines on a pipe;
- the parent kills it when it makes no progress for `stall_factor` × its median epoch time
  (at least `min_stall_seconds`, at most `max_stall_seconds`; in its first epoch, which has no
  median yet, `max_stall_seconds`, or `startup_seconds` without it; before its first step,
  `startup_seconds`), when the
  caller's `on_beat` returns False (a cancel), or when the parent itself dies (Linux's
  parent-death signal);
- the attempt ends with a `TrainResult`, or raises one of
  `TrialFailedError` (the cell's own failure: the loss diverged, or out of memory; tell the
  strategy None), `TrainingProcessError` (the process crashed, was killed, hung or exited
  without a result: infrastructure, worth another attempt), `TrainingStopped` (the caller
  asked) or `ChildError` (an exception in the child: bad settings or a bug).

`train_with_retries` is the CLI's policy: up to `max_attempts` attempts for process failures,
then the trial fails with the last reason. Celery workers count attempts in the database.
"""

from __future__ import annotations

import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from searchcore.errors import ConfigError, SearchcoreError
from searchcore.proxy import ProxyConfig
from searchcore.results import EpochMetrics, TrainResult

#: The function a child calls to train: `train_child`'s signature. Tests point it at faults.
DEFAULT_TARGET = "searchcore.train:train_child"
_STDERR_LINES_KEPT = 20


class TrialFailedError(SearchcoreError):
    """The cell's own failure (a diverged loss, out of memory): the trial fails, the search goes on."""


class TrainingProcessError(SearchcoreError):
    """The training process crashed, was killed, hung or exited without a result."""


class TrainingStopped(SearchcoreError):
    """The caller's `on_beat` asked to stop; the process was killed."""


class ChildError(SearchcoreError):
    """An exception in the training process that is neither the cell's nor the machine's fault."""


@dataclass(frozen=True)
class RunnerPolicy:
    """When a silent training process counts as hung, and how often the CLI tries again.

    `max_stall_seconds` caps the limit where something else also watches for silence: a web
    worker's heartbeat timeout, after which the reconciler gives the trial to another worker.
    """

    stall_factor: float = 5.0
    min_stall_seconds: float = 60.0
    max_stall_seconds: float | None = None
    startup_seconds: float = 600.0
    beat_seconds: float = 1.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        for name in ("stall_factor", "min_stall_seconds", "max_stall_seconds", "startup_seconds", "beat_seconds"):
            value = getattr(self, name)
            if value is None and name == "max_stall_seconds":
                continue
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"runner policy: {name} must be a positive number, got {value!r}")
        if not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            raise ConfigError(f"runner policy: max_attempts must be at least 1, got {self.max_attempts!r}")

    def stall_limit(self, epoch_seconds: list[float], training: bool) -> float:
        """Seconds without a sign of life after which the process is presumed hung; `training`
        once it has taken a step (before, it imports torch, loads data, builds the model)."""
        if not training:
            return self.startup_seconds
        if not epoch_seconds:
            return self.startup_seconds if self.max_stall_seconds is None else self.max_stall_seconds
        limit = max(self.min_stall_seconds, self.stall_factor * statistics.median(epoch_seconds))
        return limit if self.max_stall_seconds is None else min(limit, self.max_stall_seconds)


DEFAULT_POLICY = RunnerPolicy()


@dataclass(frozen=True)
class Progress:
    """A sign of life: epochs finished, and training steps plus evaluation batches done."""

    epochs: int
    steps: int


def train_in_subprocess(
    genotype: Any,
    config: ProxyConfig,
    *,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    on_beat: Callable[[Progress], bool | None] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    evaluate_test: bool = False,
    num_threads: int | None = None,
    policy: RunnerPolicy = DEFAULT_POLICY,
    target: str | None = None,
) -> TrainResult:
    """One attempt at `train_child(genotype, config)` in a child process (see the module docstring).

    `genotype` is a genotype or its dict. `on_epoch` may return False to stop after that
    epoch, as with `train_child`; `on_beat` may return False to kill the training at once.
    With `checkpoint_path`, the child saves its checkpoint there (torch.save, plain data).
    """
    job = {
        "target": target or DEFAULT_TARGET,
        "genotype": genotype if isinstance(genotype, dict) else genotype.to_dict(),
        "config": config.to_dict(),
        "checkpoint_path": None if checkpoint_path is None else os.fspath(checkpoint_path),
        "evaluate_test": evaluate_test,
        "num_threads": num_threads,
        "beat_seconds": policy.beat_seconds,
    }
    events_read, events_write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "searchcore.runner", str(events_write), str(os.getpid())],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(events_write,), start_new_session=True,
        )
    except BaseException:
        os.close(events_read)
        raise
    finally:
        os.close(events_write)
    try:
        return _supervise(process, events_read, job, on_epoch, on_beat, policy)
    finally:
        _kill(process)
        os.close(events_read)
        for stream in (process.stdin, process.stderr):
            if stream is not None:
                stream.close()


def failure_message(exc: BaseException) -> str:
    """What a trial's record says about the error that ended it: the runner's own errors
    already name the child's exception type."""
    if isinstance(exc, (TrialFailedError, TrainingProcessError, ChildError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def train_with_retries(
    genotype: Any,
    config: ProxyConfig,
    *,
    policy: RunnerPolicy = DEFAULT_POLICY,
    on_retry: Callable[[int, TrainingProcessError], None] | None = None,
    **kwargs: Any,
) -> TrainResult:
    """`train_in_subprocess`, attempted again after a process failure, up to `policy.max_attempts`.

    After the last attempt the TrainingProcessError says how many there were.
    """
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return train_in_subprocess(genotype, config, policy=policy, **kwargs)
        except TrainingProcessError as exc:
            if attempt == policy.max_attempts:
                raise TrainingProcessError(f"{exc} (attempt {attempt} of {policy.max_attempts})") from exc
            if on_retry is not None:
                on_retry(attempt, exc)
    raise AssertionError("unreachable")  # the loop returns or raises


# -- the parent's side ---------------------------------------------------------------------------


def _supervise(process, events_fd: int, job: dict, on_epoch, on_beat, policy: RunnerPolicy) -> TrainResult:
    process.stdin.write((json.dumps(job) + "\n").encode())
    process.stdin.flush()
    stderr_fd = process.stderr.fileno()
    open_fds = {events_fd: bytearray(), stderr_fd: bytearray()}
    stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
    epoch_seconds: list[float] = []
    outcome: dict[str, Any] | None = None
    last_sign_of_life = time.monotonic()
    training = False  # a first step done: from then on only the training loop's progress counts

    while open_fds:
        silent_for = time.monotonic() - last_sign_of_life
        limit = policy.stall_limit(epoch_seconds, training)
        if silent_for > limit:
            _kill(process)
            raise TrainingProcessError(_stall_reason(silent_for, limit, epoch_seconds, training, policy))
        ready, _, _ = select.select(list(open_fds), [], [], min(limit - silent_for, 1.0))
        if not training and on_beat is not None and on_beat(Progress(epochs=0, steps=0)) is False:
            _kill(process)  # still starting: importing torch, loading data, building the model
            raise TrainingStopped("training stopped: its caller asked")
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                del open_fds[fd]
                continue
            buffer = open_fds[fd]
            buffer.extend(chunk)
            *lines, rest = buffer.split(b"\n")
            open_fds[fd] = bytearray(rest)
            if fd == stderr_fd:
                for line in lines:
                    text = line.decode(errors="replace")
                    stderr_tail.append(text)
                    print(text, file=sys.stderr)
                continue
            for line in lines:
                event = json.loads(line)
                last_sign_of_life = time.monotonic()
                kind = event.pop("event")
                if kind == "beat":
                    training = training or event["steps"] > 0
                    if on_beat is not None and on_beat(Progress(**event)) is False:
                        _kill(process)
                        raise TrainingStopped("training stopped: its caller asked")
                elif kind == "epoch":
                    training = True
                    metrics = EpochMetrics(**event["metrics"])
                    epoch_seconds.append(metrics.seconds)
                    go_on = on_epoch is None or on_epoch(metrics) is not False
                    _reply(process, "go" if go_on else "stop")
                else:
                    outcome = {"kind": kind, **event}

    returncode = process.wait()
    if returncode != 0 or outcome is None:  # even after a result: a corrupted heap may have spoilt it
        raise TrainingProcessError(_exit_reason(returncode, stderr_tail))
    if outcome["kind"] == "result":
        return TrainResult.from_dict(outcome["result"])
    if outcome["kind"] == "failed":
        raise TrialFailedError(outcome["message"])
    raise ChildError(outcome["message"])


def _reply(process, word: str) -> None:
    try:
        process.stdin.write(f"{word}\n".encode())
        process.stdin.flush()
    except BrokenPipeError:  # it died; its exit status tells how
        pass


def _kill(process) -> None:
    """Kill the child's whole process group (it started a session of its own) and reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _stall_reason(
    silent_for: float, limit: float, epoch_seconds: list[float], training: bool, policy: RunnerPolicy
) -> str:
    if not training:
        return (f"training process hung: no sign of life for {silent_for:.0f} s before its first step "
                f"(limit {limit:.0f} s); killed")
    if not epoch_seconds:
        return f"training process hung: no progress for {silent_for:.0f} s in its first epoch (limit {limit:.0f} s); killed"
    median = statistics.median(epoch_seconds)
    cap = "" if policy.max_stall_seconds is None else f", at most {policy.max_stall_seconds:.0f} s"
    return (f"training process hung: no progress for {silent_for:.0f} s after epoch {len(epoch_seconds)} "
            f"(limit {limit:.0f} s: {policy.stall_factor:g} x its median epoch of {median:.1f} s, at least "
            f"{policy.min_stall_seconds:.0f} s{cap}); killed")


def _exit_reason(returncode: int, stderr_tail: deque[str]) -> str:
    last = next((line.strip() for line in reversed(stderr_tail) if line.strip()), "")
    detail = f": {last}" if last else ""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        if number == signal.SIGKILL:
            return (f"training process killed: signal {number} ({name}), by the kernel's out-of-memory killer "
                    f"or by hand{detail}")
        return f"training process crashed: signal {number} ({name}){detail}"
    if returncode == 0:
        return "training process exited without a result"
    return f"training process exited with status {returncode} without a result{detail}"


# -- the child's side ----------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies, then check it has not already."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _load_target(path: str) -> Callable[..., TrainResult]:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _child_main(events_fd: int, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    events = os.fdopen(events_fd, "w", buffering=1)

    def send(kind: str, **payload: Any) -> None:
        events.write(json.dumps({"event": kind, **payload}) + "\n")

    job = json.loads(sys.stdin.readline())
    send("beat", epochs=0, steps=0)  # started
    try:
        import torch

        from searchcore.results import TrainingDivergedError
        from searchcore.spaces import parse_genotype

        if job["num_threads"]:
            torch.set_num_threads(job["num_threads"])
        train = _load_target(job["target"])
        counter = {"epochs": 0, "steps": 0, "sent_at": 0.0}

        def on_progress() -> None:
            counter["steps"] += 1
            now = time.monotonic()
            if now - counter["sent_at"] >= job["beat_seconds"]:
                counter["sent_at"] = now
                send("beat", epochs=counter["epochs"], steps=counter["steps"])

        def on_epoch(metrics: EpochMetrics) -> bool:
            counter["epochs"] += 1
            send("epoch", metrics=asdict(metrics))
            return sys.stdin.readline().strip() == "go"  # end of input: the parent is gone, stop

        def save_checkpoint(checkpoint: dict[str, Any]) -> None:
            path = job["checkpoint_path"]
            torch.save(checkpoint, path + ".tmp")
            os.replace(path + ".tmp", path)

        result = train(
            parse_genotype(job["genotype"]), ProxyConfig.from_dict(job["config"]), on_epoch=on_epoch,
            on_progress=on_progress, evaluate_test=job["evaluate_test"],
            checkpoint_sink=save_checkpoint if job["checkpoint_path"] else None,
        )
    except TrainingDivergedError as exc:
        send("failed", message=f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch's, CUDA's included
            send("failed", message=f"{type(exc).__name__}: {exc}")
        else:
            traceback.print_exc()  # to the parent's log
            send("error", message=f"{type(exc).__name__}: {exc}")
    else:
        send("result", result=result.to_dict())
    events.close()


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
