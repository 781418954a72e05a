"""Trains one trial, in a child process that its caller watches and can kill, under the one
failure policy that the CLI loop and the Celery workers share.

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
  parent-death signal).

`train_in_subprocess` is one such attempt at a proxy training, `transfer_in_subprocess` one at
a transfer training (searchcore.transfer_train, resumable from its output folder) and
`oneshot_in_subprocess` one at a one-shot search (searchcore.oneshot_train, resumable likewise):
the same child, told by its job's `kind` which training to run. `run_trial`, `run_transfer`
and `run_oneshot` apply the policy to them, so that every caller judges a training's end alike:

- a result: the trial is **finished**;
- the cell's own failure — its loss diverged, or it ran out of memory: the trial is
  **failed**, the strategy is told None, the search goes on;
- the process crashed, was killed, hung or exited without a result — the machine's fault, not
  the cell's: the trial is **lost**. With `retry_lost` (the CLI) it is tried again up to
  `policy.max_attempts` times and then fails with the last reason; without (a worker, whose
  database counts attempts) the caller queues it again;
- the caller's `on_beat` asked to stop: the trial is **stopped**;
- anything else — bad settings, a missing or damaged dataset, a bug — is neither the cell's
  fault nor the machine's, and would fail every trial alike: `TrialAborted`, and the run
  stops (the CLI leaves the trial pending, to train again on resume; a worker fails the trial
  and its search).
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
from typing import Any, Generic, Literal, TypeVar

from searchcore.errors import ConfigError, SearchcoreError
from searchcore.oneshot import OneShotConfig, OneShotEpoch, OneShotResult
from searchcore.proxy import DEFAULT_TRAINER, TRAINERS, ProxyConfig
from searchcore.results import EpochMetrics, TrainingDivergedError, TrainResult
from searchcore.transfer import TransferConfig, TransferResult

#: The function a child calls to train with the default trainer: `train_child`'s signature.
#: Tests point it at faults; a config naming another trainer runs that one (proxy.TRAINERS).
DEFAULT_TARGET = TRAINERS.get(DEFAULT_TRAINER)
#: The function a transfer job calls: `train_transfer`'s signature.
TRANSFER_TARGET = "searchcore.transfer_train:train_transfer"
#: The function a one-shot job calls: `train_oneshot`'s signature.
ONESHOT_TARGET = "searchcore.oneshot_train:train_oneshot"
_STDERR_LINES_KEPT = 20


class TrialFailedError(SearchcoreError):
    """The cell's own failure (a diverged loss, out of memory): the trial fails, the search goes on."""


class TrainingProcessError(SearchcoreError):
    """The training process crashed, was killed, hung or exited without a result."""


class TrainingStopped(SearchcoreError):
    """The caller's `on_beat` asked to stop; the process was killed."""


class ChildError(SearchcoreError):
    """An exception in the training process that is neither the cell's nor the machine's fault."""


class TrialAborted(SearchcoreError):
    """Neither the cell's fault nor the machine's (bad settings, a missing dataset, a bug), so
    every trial would fail alike: the run stops. The message names the exception."""


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
        "kind": "proxy",
        "target": target or (DEFAULT_TARGET if config.trainer == DEFAULT_TRAINER else TRAINERS.get(config.trainer)),
        "genotype": genotype if isinstance(genotype, dict) else genotype.to_dict(),
        "config": config.to_dict(),
        "checkpoint_path": None if checkpoint_path is None else os.fspath(checkpoint_path),
        "evaluate_test": evaluate_test,
        "num_threads": num_threads,
        "beat_seconds": policy.beat_seconds,
    }
    return TrainResult.from_dict(_run_job(job, on_epoch, on_beat, policy))


def transfer_in_subprocess(
    genotype: Any,
    config: TransferConfig,
    *,
    out_dir: str | os.PathLike,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    on_beat: Callable[[Progress], bool | None] | None = None,
    num_threads: int | None = None,
    policy: RunnerPolicy = DEFAULT_POLICY,
    target: str | None = None,
) -> TransferResult:
    """One attempt at `train_transfer(genotype, config, out_dir=out_dir)` in a child process,
    supervised as `train_in_subprocess`'s; it resumes from what `out_dir` holds."""
    job = {
        "kind": "transfer",
        "target": target or TRANSFER_TARGET,
        "genotype": genotype if isinstance(genotype, dict) else genotype.to_dict(),
        "config": config.to_dict(),
        "out_dir": os.fspath(out_dir),
        "num_threads": num_threads,
        "beat_seconds": policy.beat_seconds,
    }
    return TransferResult.from_dict(_run_job(job, on_epoch, on_beat, policy))


def oneshot_in_subprocess(
    config: OneShotConfig,
    *,
    out_dir: str | os.PathLike,
    on_epoch: Callable[[OneShotEpoch], bool | None] | None = None,
    on_beat: Callable[[Progress], bool | None] | None = None,
    num_threads: int | None = None,
    policy: RunnerPolicy = DEFAULT_POLICY,
    target: str | None = None,
) -> OneShotResult:
    """One attempt at `train_oneshot(config, out_dir=out_dir)` in a child process, supervised
    as `train_in_subprocess`'s; it resumes from what `out_dir` holds."""
    job = {
        "kind": "oneshot",
        "target": target or ONESHOT_TARGET,
        "config": config.to_dict(),
        "out_dir": os.fspath(out_dir),
        "num_threads": num_threads,
        "beat_seconds": policy.beat_seconds,
    }
    return OneShotResult.from_dict(_run_job(job, on_epoch, on_beat, policy))


def threads_per_child(children: int, cores: int | None = None) -> int:
    """Threads for each of `children` trainings that share this machine's cores (`cores`: the
    ones this process may run on). Left alone, torch gives every child all the cores, and
    children sharing them oversubscribe: on 2 cores with other load, a 1-epoch 1@48 trial took
    2 min 2 s instead of 20 s with one thread."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, children))


def _child_environment(num_threads: int | None) -> dict[str, str] | None:
    """The child's environment: this one, with OpenMP's and MKL's pools sized to `num_threads`
    when given, whatever the caller's environment said (torch.set_num_threads in the child
    sizes torch's own)."""
    if not num_threads:
        return None
    return {**os.environ, "OMP_NUM_THREADS": str(num_threads), "MKL_NUM_THREADS": str(num_threads)}


def _run_job(job: dict[str, Any], on_epoch, on_beat, policy: RunnerPolicy) -> dict[str, Any]:
    """Start the child on `job`, supervise it, and return its result dict."""
    events_read, events_write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "searchcore.runner", str(events_write), str(os.getpid())],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(events_write,), start_new_session=True,
            env=_child_environment(job["num_threads"]),
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


TrialStatus = Literal["finished", "failed", "lost", "stopped"]
ResultT = TypeVar("ResultT", TrainResult, TransferResult, OneShotResult)


@dataclass(frozen=True)
class TrialOutcome(Generic[ResultT]):
    """How a training ended (module docstring): `result` when finished, else `message` says
    why (the cell's failure, or the lost process's reason)."""

    status: TrialStatus
    result: ResultT | None = None
    message: str = ""


def run_trial(
    genotype: Any,
    config: ProxyConfig,
    *,
    train: Callable[..., TrainResult] | None = None,
    data: Any = None,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    on_beat: Callable[[Progress], bool | None] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    num_threads: int | None = None,
    policy: RunnerPolicy = DEFAULT_POLICY,
    retry_lost: bool = False,
    on_retry: Callable[[int, str], None] | None = None,
) -> TrialOutcome[TrainResult]:
    """Train one trial and judge how it ended by the one policy (module docstring).

    Trains in a child process, or with `train` (`train_child`'s signature, given `data`) in
    this one: tests and benchmarks, where nothing native is expected to fail. `on_retry(attempt,
    reason)` hears of each lost attempt that `retry_lost` tries again. Raises TrialAborted for
    every exception that is not the cell's failure nor a lost process, this process's own too.
    """

    def attempt() -> TrainResult:
        if train is None:
            return train_in_subprocess(
                genotype, config, on_epoch=on_epoch, on_beat=on_beat, checkpoint_path=checkpoint_path,
                num_threads=num_threads, policy=policy,
            )
        return _train_in_process(train, genotype, config, data, on_epoch, on_beat, checkpoint_path, policy)

    return _judge(attempt, policy, retry_lost, on_retry)


def run_transfer(
    genotype: Any,
    config: TransferConfig,
    *,
    out_dir: str | os.PathLike,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    on_beat: Callable[[Progress], bool | None] | None = None,
    num_threads: int | None = None,
    policy: RunnerPolicy = DEFAULT_POLICY,
    retry_lost: bool = False,
    on_retry: Callable[[int, str], None] | None = None,
) -> TrialOutcome[TransferResult]:
    """Transfer-train `genotype` in a child process and judge how it ended by `run_trial`'s
    policy; `.result` is a TransferResult. A lost attempt that `retry_lost` tries again resumes
    from `out_dir`'s last checkpoint. Raises TrialAborted for bad settings, a missing dataset,
    a memory-fit refusal or a bug."""
    return _judge(
        lambda: transfer_in_subprocess(genotype, config, out_dir=out_dir, on_epoch=on_epoch, on_beat=on_beat,
                                       num_threads=num_threads, policy=policy),
        policy, retry_lost, on_retry,
    )


def run_oneshot(
    config: OneShotConfig,
    *,
    out_dir: str | os.PathLike,
    on_epoch: Callable[[OneShotEpoch], bool | None] | None = None,
    on_beat: Callable[[Progress], bool | None] | None = None,
    num_threads: int | None = None,
    policy: RunnerPolicy = DEFAULT_POLICY,
    retry_lost: bool = False,
    on_retry: Callable[[int, str], None] | None = None,
) -> TrialOutcome[OneShotResult]:
    """Run a one-shot search in a child process and judge how it ended by `run_trial`'s policy;
    `.result` is a OneShotResult. A lost attempt (or a later call, on any worker that sees
    `out_dir`) resumes from `out_dir`'s last checkpoint. Raises TrialAborted for bad settings,
    a missing dataset or a bug."""
    return _judge(
        lambda: oneshot_in_subprocess(config, out_dir=out_dir, on_epoch=on_epoch, on_beat=on_beat,
                                      num_threads=num_threads, policy=policy),
        policy, retry_lost, on_retry,
    )


def _judge(
    attempt: Callable[[], ResultT], policy: RunnerPolicy, retry_lost: bool,
    on_retry: Callable[[int, str], None] | None,
) -> TrialOutcome[ResultT]:
    """Run `attempt` (again, for a lost process with `retry_lost`) and sort how it ended."""
    attempts = policy.max_attempts if retry_lost else 1
    for number in range(1, attempts + 1):
        try:
            result = attempt()
        except TrialFailedError as exc:
            return TrialOutcome("failed", message=str(exc))
        except TrainingStopped as exc:
            return TrialOutcome("stopped", message=str(exc))
        except TrainingProcessError as exc:
            if not retry_lost:
                return TrialOutcome("lost", message=str(exc))
            if number == attempts:
                return TrialOutcome("failed", message=f"{exc} (attempt {number} of {attempts})")
            if on_retry is not None:
                on_retry(number, str(exc))
        except ChildError as exc:
            raise TrialAborted(str(exc)) from exc
        except Exception as exc:  # in this process, around the training: a bug
            raise TrialAborted(f"{type(exc).__name__}: {exc}") from exc
        else:
            return TrialOutcome("finished", result=result)
    raise AssertionError("unreachable")  # the last attempt returns


def is_cells_failure(exc: BaseException) -> bool:
    """Whether an exception from training is the cell's own failure: a diverged loss, or out of
    memory (torch's and CUDA's OutOfMemoryError, told by name so the parent needs no torch)."""
    return isinstance(exc, (TrainingDivergedError, MemoryError)) or type(exc).__name__ == "OutOfMemoryError"


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """`torch.save` to `path` whole or not at all: a crash mid-write leaves the old file."""
    import torch

    tmp = f"{os.fspath(path)}.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def _train_in_process(train, genotype, config, data, on_epoch, on_beat, checkpoint_path, policy) -> TrainResult:
    """One attempt with `train` in this process, its exceptions sorted as a child's would be."""
    epochs = steps = 0
    beat_at = 0.0

    def on_progress() -> None:
        nonlocal steps, beat_at
        steps += 1
        now = time.monotonic()
        if on_beat is not None and now - beat_at >= policy.beat_seconds:
            beat_at = now
            if on_beat(Progress(epochs=epochs, steps=steps)) is False:
                raise TrainingStopped("training stopped: its caller asked")

    def on_epoch_done(metrics: EpochMetrics) -> bool | None:
        nonlocal epochs
        epochs += 1
        return None if on_epoch is None else on_epoch(metrics)

    sink = None if checkpoint_path is None else lambda checkpoint: save_checkpoint(checkpoint, checkpoint_path)
    try:
        return train(genotype, config, data=data, on_epoch=on_epoch_done, on_progress=on_progress,
                     checkpoint_sink=sink)
    except TrainingStopped:
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if is_cells_failure(exc):
            _release_cached_gpu_memory()
            raise TrialFailedError(message) from exc
        raise ChildError(message) from exc


def _release_cached_gpu_memory() -> None:
    """After an in-process failure, hand the failed network's cached blocks back (a child
    process frees them by exiting)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- the parent's side ---------------------------------------------------------------------------


def _supervise(process, events_fd: int, job: dict, on_epoch, on_beat, policy: RunnerPolicy) -> dict[str, Any]:
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
                    metrics = _EPOCH_REPORTS[job["kind"]](**event["metrics"])
                    epoch_seconds.append(metrics.seconds)
                    go_on = on_epoch is None or on_epoch(metrics) is not False
                    _reply(process, "go" if go_on else "stop")
                else:
                    outcome = {"kind": kind, **event}

    returncode = process.wait()
    if returncode != 0 or outcome is None:  # even after a result: a corrupted heap may have spoilt it
        raise TrainingProcessError(_exit_reason(returncode, stderr_tail))
    if outcome["kind"] == "result":
        return outcome["result"]
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


def _load_target(path: str) -> Callable[..., Any]:
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
        train = _load_target(job["target"])  # a trainer that needs torch imports it here
        if job["num_threads"] and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(job["num_threads"])
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

        result = _JOB_KINDS[job["kind"]](train, job, on_epoch, on_progress)
    except Exception as exc:
        if is_cells_failure(exc):
            send("failed", message=f"{type(exc).__name__}: {exc}")
        else:
            traceback.print_exc()  # to the parent's log
            send("error", message=f"{type(exc).__name__}: {exc}")
    else:
        send("result", result=result.to_dict())
    events.close()


def _proxy_job(train, job: dict[str, Any], on_epoch, on_progress) -> TrainResult:
    from searchcore.spaces import parse_genotype

    path = job["checkpoint_path"]
    return train(
        parse_genotype(job["genotype"]), ProxyConfig.from_dict(job["config"]), on_epoch=on_epoch, on_progress=on_progress,
        evaluate_test=job["evaluate_test"],
        checkpoint_sink=None if path is None else lambda checkpoint: save_checkpoint(checkpoint, path),
    )


def _transfer_job(train, job: dict[str, Any], on_epoch, on_progress) -> TransferResult:
    from searchcore.spaces import parse_genotype

    return train(parse_genotype(job["genotype"]), TransferConfig.from_dict(job["config"]), out_dir=job["out_dir"],
                 on_epoch=on_epoch, on_progress=on_progress)


def _oneshot_job(train, job: dict[str, Any], on_epoch, on_progress) -> OneShotResult:
    return train(OneShotConfig.from_dict(job["config"]), out_dir=job["out_dir"], on_epoch=on_epoch,
                 on_progress=on_progress)


#: How a child runs each kind of job with its target.
_JOB_KINDS: dict[str, Callable[..., TrainResult | TransferResult | OneShotResult]] = {
    "proxy": _proxy_job, "transfer": _transfer_job, "oneshot": _oneshot_job,
}
#: What each kind of job reports after an epoch.
_EPOCH_REPORTS: dict[str, Callable[..., EpochMetrics | OneShotEpoch]] = {
    "proxy": EpochMetrics, "transfer": EpochMetrics, "oneshot": OneShotEpoch,
}


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
