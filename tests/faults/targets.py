"""Training functions with `train_child`'s signature that fail the ways native code does.

The runner's child process imports them by name (`searchcore.runner.DEFAULT_TARGET`), so
each runs where a real training would. Where a test needs to find the child, it names a file
in CELLSEARCH_FAULT_FILE and the target writes its pid there.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from searchcore.results import EpochMetrics, TrainingDivergedError, TrainResult


def _epoch(on_epoch, epoch: int = 1, seconds: float = 0.05) -> None:
    on_epoch(EpochMetrics(epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.25, lr=0.05,
                          seconds=seconds, images_per_second=100.0))


def _note_pid() -> None:
    if os.environ.get("CELLSEARCH_FAULT_FILE"):
        with open(os.environ["CELLSEARCH_FAULT_FILE"], "a") as f:
            f.write(f"{os.getpid()}\n")


def quick_result(genotype, config, *, on_epoch, on_progress, **kwargs) -> TrainResult:
    _note_pid()
    on_progress()
    _epoch(on_epoch)
    metrics = EpochMetrics(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.25, lr=0.05,
                           seconds=0.05, images_per_second=100.0)
    return TrainResult(reward=0.25, val_acc=0.25, best_val_acc=0.25, test_acc=None, params=1, mult_adds=2,
                       epochs=[metrics], stopped=False, seconds=0.1)


def abort_in_second_epoch(genotype, config, *, on_epoch, **kwargs):
    """What glibc does on a corrupted heap: SIGABRT, no Python exception."""
    _epoch(on_epoch)
    print("double free or corruption (!prev)", file=sys.stderr, flush=True)
    os.abort()


def segfault(genotype, config, **kwargs):
    ctypes.string_at(0)


def killed(genotype, config, **kwargs):
    """The kernel's out-of-memory killer: SIGKILL from outside."""
    os.kill(os.getpid(), signal.SIGKILL)


def hang_after_first_epoch(genotype, config, *, on_epoch, **kwargs):
    """Spin as a oneDNN kernel did: no progress, deaf to SIGTERM."""
    _note_pid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _epoch(on_epoch)
    while True:
        time.sleep(0.1)


def hang_at_start(genotype, config, **kwargs):
    _note_pid()
    while True:
        time.sleep(0.1)


def beat_forever(genotype, config, *, on_progress, **kwargs):
    """Alive and making progress, until someone stops it."""
    _note_pid()
    while True:
        on_progress()
        time.sleep(0.01)


def diverge(genotype, config, *, on_epoch, **kwargs):
    _epoch(on_epoch)
    raise TrainingDivergedError("child training diverged: the loss became nan in epoch 2")


def bad_settings(genotype, config, **kwargs):
    raise FileNotFoundError("no CIFAR-10 batches in /nowhere")


def exit_without_result(genotype, config, **kwargs):
    sys.exit(3)


def crash_once(genotype, config, **kwargs):
    """Abort on the first call, train on the next: a flaky machine, not a bad cell."""
    marker = os.environ["CELLSEARCH_FAULT_FILE"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.abort()
    return quick_result(genotype, config, **kwargs)


def strided_1x1_backward(genotype, config, *, on_progress, **kwargs):
    """The real thing: oneDNN's strided 1×1 backward kernel on the shapes that corrupt its heap
    (tests/faults/onednn_strided_1x1.py), run where a training would run."""
    from tests.faults.onednn_strided_1x1 import main

    on_progress()
    main("strided", threads=1)
    raise AssertionError("the strided 1x1 kernel survived: see the canary in test_onednn_strided_1x1.py")


def report_threads(genotype, config, **kwargs) -> TrainResult:
    """A result whose params are torch's intra-op threads and mult-adds OpenMP's, as the child sees them."""
    import torch

    return TrainResult(reward=0.5, val_acc=0.5, best_val_acc=0.5, test_acc=None, params=torch.get_num_threads(),
                       mult_adds=int(os.environ.get("OMP_NUM_THREADS", "0")), epochs=[], stopped=False, seconds=0.0)


def _noting_epochs_dying_once(on_epoch, *, after_epoch: int):
    """An on_epoch that notes each epoch in CELLSEARCH_FAULT_FILE and passes it on; the first
    time through (no note yet) the process dies by SIGKILL once epoch `after_epoch` is reported."""
    note = os.environ["CELLSEARCH_FAULT_FILE"]
    first_time = not os.path.exists(note)

    def epoch_then_die(report):
        with open(note, "a") as f:
            f.write(f"{report.epoch}\n")
        go = on_epoch(report)
        if first_time and report.epoch == after_epoch:
            os.kill(os.getpid(), signal.SIGKILL)
        return go

    return epoch_then_die


def transfer_killed_after_second_epoch(genotype, config, *, out_dir, on_epoch, on_progress):
    """searchcore.transfer_train.train_transfer, killed once after its second epoch (see above)."""
    from searchcore.transfer_train import train_transfer

    return train_transfer(genotype, config, out_dir=out_dir, on_progress=on_progress,
                          on_epoch=_noting_epochs_dying_once(on_epoch, after_epoch=2))


def oneshot_killed_after_first_epoch(config, *, out_dir, on_epoch, on_progress):
    """searchcore.oneshot_train.train_oneshot, killed once after its first epoch (see above)."""
    from searchcore.oneshot_train import train_oneshot

    return train_oneshot(config, out_dir=out_dir, on_progress=on_progress,
                         on_epoch=_noting_epochs_dying_once(on_epoch, after_epoch=1))
