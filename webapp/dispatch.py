"""The only code that talks to the Celery broker: it queues tasks, revokes them and reads the
gpu queue's size.

Tasks are sent by name, so no service imports a task module (tasks import services, never
the other way round), and the web process never loads the workers' code. Every message is sent
once the current transaction commits: a worker never looks for a row not committed yet, and a
rolled-back write queues nothing. A broker that is away loses a message, never a write: the
reconciler (searches.reconcile) finds what was not queued and queues it again.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from webapp.celery import app as celery_app

logger = logging.getLogger(__name__)

#: Task names (the `name=` of each @shared_task); settings.CELERY_TASK_ROUTES routes them.
ADVANCE_SEARCH = "searches.advance_search"
FAIL_SEARCH = "searches.fail_search"
TRAIN_TRIAL = "trials.train_trial"
TRAIN_TRANSFER = "transfers.train_transfer"
TRAIN_ONESHOT = "searches.train_oneshot"
#: The broker queue train_trial, train_transfer and train_oneshot messages wait in (settings.CELERY_TASK_ROUTES).
GPU_QUEUE = "gpu"


def new_task_id() -> str:
    """An id for a message about to be sent, stored on its trial first so a cancel can revoke it."""
    return str(uuid.uuid4())


def queue_advance_search(*, search_id: int) -> None:
    """Run a control step for the search after the current transaction commits."""

    def send() -> None:
        try:
            celery_app.send_task(ADVANCE_SEARCH, args=(search_id,))
        except Exception:  # the reconciler nudges the search later
            logger.warning("could not queue advance_search(%s); the reconciler will", search_id, exc_info=True)

    transaction.on_commit(send)


def queue_fail_search(*, search_id: int, error: str) -> None:
    """After the commit, end the search with `error` (a trial found settings no trial can train
    with). Should the message be lost, the next trial of the search fails alike and sends it again."""

    def send() -> None:
        try:
            celery_app.send_task(FAIL_SEARCH, args=(search_id, error))
        except Exception:
            logger.warning("could not queue fail_search(%s)", search_id, exc_info=True)

    transaction.on_commit(send)


def queue_train_trials(*, trials: list[tuple[int, str]]) -> None:
    """After the commit, send each (trial id, task id) to the gpu queue; the task id is already
    stored on the trial, so a cancel can revoke it."""

    def send() -> None:
        for trial_id, task_id in trials:
            try:
                celery_app.send_task(TRAIN_TRIAL, args=(trial_id,), task_id=task_id)
            except Exception:  # the reconciler requeues pending trials later
                logger.warning("could not queue train_trial(%s); the reconciler will", trial_id, exc_info=True)

    if trials:
        transaction.on_commit(send)


def queue_train_transfer(*, transfer_id: int, task_id: str) -> None:
    """After the commit, send the transfer to the gpu queue under `task_id` (already stored on
    it, so a pause or cancel can revoke it)."""
    _queue_run(TRAIN_TRANSFER, transfer_id, task_id)


def queue_train_oneshot(*, run_id: int, task_id: str) -> None:
    """After the commit, send a one-shot search's supernet run to the gpu queue under `task_id`
    (already stored on it, so a pause or cancel can revoke it)."""
    _queue_run(TRAIN_ONESHOT, run_id, task_id)


def _queue_run(task: str, run_id: int, task_id: str) -> None:
    def send() -> None:
        try:
            celery_app.send_task(task, args=(run_id,), task_id=task_id)
        except Exception:  # the reconciler requeues pending runs later
            logger.warning("could not queue %s(%s); the reconciler will", task, run_id, exc_info=True)

    transaction.on_commit(send)


def queue_revoke_tasks(*, task_ids: list[str], terminate: bool) -> None:
    """Revoke these tasks after the current transaction commits (see `revoke_tasks`)."""
    if task_ids:
        transaction.on_commit(lambda: revoke_tasks(task_ids=task_ids, terminate=terminate))


def revoke_tasks(*, task_ids: list[str], terminate: bool) -> None:
    """Tell the workers to drop (and, with `terminate`, kill) these tasks. Best effort: a trial
    that keeps running notices its cancelled search at its next epoch and stops."""
    for task_id in task_ids:
        try:
            celery_app.control.revoke(task_id, terminate=terminate)
        except Exception:  # the broker being away must not undo a cancel
            logger.warning("could not revoke task %s", task_id, exc_info=True)


def gpu_queue_size() -> int | None:
    """Messages waiting in the gpu queue, or None when the broker cannot say."""
    try:
        with celery_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            return connection.default_channel.queue_declare(queue=GPU_QUEUE, passive=True).message_count
    except Exception:
        logger.warning("could not read the size of the %s queue", GPU_QUEUE, exc_info=True)
        return None
