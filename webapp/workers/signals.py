"""Celery's worker signals → the Worker rows and the trials' logs (connected by apps.py; only
a worker process sends them).

With the prefork pool the main process is the worker: it registers the worker when it is ready
(before it takes a message), beats from a daemon thread every CELLSEARCH_HEARTBEAT_SECONDS,
and says goodbye at a warm shutdown. The pool's child processes run the tasks: around each
`trials.train_trial` or `transfers.train_transfer` they name the worker's current trial or
transfer, count the trials done, and capture the trial's log (capture.py). Nothing here may
break a worker: every write's failure is logged and dropped.
"""

from __future__ import annotations

import logging
import os
import threading

from celery import signals
from django.conf import settings
from django.db import connections

from webapp.trials.naming import worker_host

logger = logging.getLogger(__name__)

TRIAL_TASK, TRANSFER_TASK, ONESHOT_TASK = "trials.train_trial", "transfers.train_transfer", "searches.train_oneshot"
#: The argument naming each long task's row, and the worker_task_started keyword it goes to.
RUN_TASKS = {TRANSFER_TASK: ("transfer_id", "transfer_id"), ONESHOT_TASK: ("run_id", "oneshot_id")}
_captures: dict[str, object] = {}
_beating: dict[str, threading.Event] = {}


def _quietly(what: str, write, **kwargs) -> None:
    try:
        write(**kwargs)
    except Exception:  # noqa: BLE001 - bookkeeping must never take a worker or a task down
        logger.warning("workers: could not %s", what, exc_info=True)


def _first_arg(args, kwargs, name: str) -> int | None:
    value = kwargs.get(name) if kwargs else None
    if value is None and args:
        value = args[0]
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# -- the main process ---------------------------------------------------------------------------


def _beat_forever(name: str, stop: threading.Event) -> None:
    from webapp.workers import services

    while not stop.wait(settings.CELLSEARCH_HEARTBEAT_SECONDS):
        _quietly("beat", services.worker_beat, name=name)
        connections.close_all()  # this thread's connection: opened per beat, never shared


def on_worker_setup(sender=None, instance=None, **kwargs) -> None:
    """Note the pool's concurrency where this worker's trainings read it (trials.services.
    threads_per_training): set before the pool starts, so its processes inherit it."""
    from webapp.trials.services import WORKER_CONCURRENCY_VARIABLE

    os.environ[WORKER_CONCURRENCY_VARIABLE] = str(getattr(instance, "concurrency", None) or 1)


def on_worker_ready(sender=None, **kwargs) -> None:
    from webapp.workers import services
    from webapp.workers.gpu import gpu_inventory

    name = getattr(sender, "hostname", None)
    if not name:
        return
    try:
        queues = ",".join(sorted(sender.app.amqp.queues.consume_from))
    except Exception:  # noqa: BLE001
        queues = ""
    gpu = gpu_inventory()
    _quietly("register", services.worker_register, name=name, host=worker_host(), queues=queues,
             gpu_name=gpu[0] if gpu else "", gpu_memory_mb=gpu[1] if gpu else None)
    connections.close_all()  # a pool child forked later must not inherit this connection
    stop = threading.Event()
    _beating[name] = stop
    threading.Thread(target=_beat_forever, args=(name, stop), name="cellsearch-worker-heartbeat",
                     daemon=True).start()


def on_worker_shutdown(sender=None, **kwargs) -> None:
    from webapp.workers import services

    for name, stop in list(_beating.items()):
        stop.set()
        _quietly("mark stopped", services.worker_stop, name=name)
        _beating.pop(name, None)
    connections.close_all()


# -- the process that runs the task -------------------------------------------------------------


def on_task_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra) -> None:
    from webapp.workers import services
    from webapp.workers.capture import TrialLogCapture

    name = getattr(task, "name", "")
    if name != TRIAL_TASK and name not in RUN_TASKS:
        return
    node = getattr(task.request, "hostname", None) or f"{worker_host()}:{os.getpid()}"
    if name == TRIAL_TASK:
        trial_id = _first_arg(args, kwargs, "trial_id")
        _quietly("note its trial", services.worker_task_started, name=node, host=worker_host(), trial_id=trial_id)
        if trial_id is not None and task_id:
            capture = TrialLogCapture(trial_id=trial_id, node=node)
            capture.attach()
            _captures[task_id] = capture
    else:
        argument, keyword = RUN_TASKS[name]
        _quietly("note its task", services.worker_task_started, name=node, host=worker_host(),
                 **{keyword: _first_arg(args, kwargs, argument)})


def on_task_postrun(sender=None, task_id=None, task=None, retval=None, state=None, **extra) -> None:
    from webapp.workers import services

    name = getattr(task, "name", "")
    if name != TRIAL_TASK and name not in RUN_TASKS:
        return
    capture = _captures.pop(task_id, None) if task_id else None
    if capture is not None:
        _quietly("save a trial's log", lambda: capture.finish())
    node = getattr(task.request, "hostname", None) or f"{worker_host()}:{os.getpid()}"
    done = name == TRIAL_TASK and retval in ("finished", "failed")
    _quietly("note its task ended", services.worker_task_ended, name=node, trial_done=done)


def connect() -> None:
    signals.celeryd_after_setup.connect(on_worker_setup, weak=False, dispatch_uid="cellsearch-workers-setup")
    signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="cellsearch-workers-ready")
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid="cellsearch-workers-shutdown")
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="cellsearch-workers-prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="cellsearch-workers-postrun")
