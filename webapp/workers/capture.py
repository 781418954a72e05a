"""Collects what a trial's training writes on its worker, for the trial's log.

While `trials.train_trial` runs, a handler on the root logger keeps the records emitted by the
task's thread: the training child's stderr (searchcore.runner prints it to the worker's stderr,
which Celery redirects to its `celery.redirected` logger) and the webapp's own lines (why a
trial failed, why it was queued again). They are saved as the trial attempt's TrialLog every
FLUSH_SECONDS while lines come, and at the end of the task.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, connection

from webapp.trials.models import Trial

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
_KEEP_CHARS = 256 * 1024  # in memory; the saved log keeps less (models.TRIAL_LOG_MAX_CHARS)
_PLAIN = ("celery.redirected",)  # the child's own lines: written as they came


def epoch_line(epoch: dict) -> str:
    """An epoch's metrics as the trial recorded them, one line."""
    parts = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
             for key, value in epoch.items() if key != "epoch"]
    return f"epoch {epoch.get('epoch', '?')}: " + ", ".join(parts)


class TrialLogCapture(logging.Handler):
    def __init__(self, *, trial_id: int, node: str) -> None:
        super().__init__(level=logging.INFO)
        self.trial_id, self.node = trial_id, node
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self.size = 0
        self.attempt: int | None = None
        self.started = time.time()
        self.flushed_at = 0.0
        self.checked_at = 0.0
        self.dirty = False
        self._busy = False  # saving: records logged meanwhile are not ours
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    # -- collecting ---------------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if self._busy or record.thread != self.thread or record.name.startswith(__name__):
            return
        try:
            text = record.getMessage() if record.name in _PLAIN and not record.exc_info else self.format(record)
        except Exception:  # noqa: BLE001 - a bad record must not break the training
            return
        self.lines.append(text)
        self.size += len(text) + 1
        while self.size > _KEEP_CHARS and len(self.lines) > 1:
            self.size -= len(self.lines.pop(0)) + 1
        self.dirty = True
        if time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.save()

    def attach(self) -> None:
        logging.getLogger().addHandler(self)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)

    # -- saving -------------------------------------------------------------------------------

    def _find_attempt(self) -> int | None:
        """The attempt this process claimed: the trial's `attempts` once its `worker` names us.
        None before the claim, and for a message that found nothing to claim."""
        if self.attempt is None:
            from webapp.trials.services import worker_name

            row = Trial.objects.filter(pk=self.trial_id).values("attempts", "worker").first()
            if row is not None and row["worker"] == worker_name():
                self.attempt = row["attempts"]
        return self.attempt

    def text(self, *, footer: str = "") -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        head = f"--- attempt {self.attempt} on {self.node}, started {started} ---"
        return "\n".join([head, *self.lines, *([footer] if footer else [])]) + "\n"

    def save(self, *, footer: str = "", final: bool = False) -> bool:
        """Write the log so far (never inside the task's own transaction: a record logged there
        waits for the next save). True when it was written."""
        if self._busy or (connection.in_atomic_block and not final):
            return False
        self._busy = True
        try:
            from webapp.workers import services

            self.flushed_at = time.monotonic()
            if self._find_attempt() is None:
                return False
            services.trial_log_save(trial_id=self.trial_id, attempt=self.attempt, worker=self.node,
                                    text=self.text(footer=footer))
            self.dirty = False
            return True
        except DatabaseError:  # a busy database: the next save tries again
            logger.warning("trial %s: could not save its log", self.trial_id, exc_info=True)
            return False
        finally:
            self._busy = False

    def finish(self) -> None:
        """The task ended: save the log with how the attempt ended."""
        self.detach()
        try:
            row = Trial.objects.filter(pk=self.trial_id).values("status", "error", "attempts", "worker", "epochs").first()
        except DatabaseError:
            row = None
        if row is None:
            return
        if self.attempt is None and row["status"] == Trial.Status.PENDING and row["worker"] == "" and \
                self.lines:  # lost before a save found our claim: it was queued again, un-owned
            self.attempt = row["attempts"]
        for epoch in (row["epochs"] or []) if row["status"] == Trial.Status.FINISHED else []:
            self.lines.append(epoch_line(epoch))
        footer = f"--- ended: {row['status']}"
        if row["error"] and row["status"] != Trial.Status.FINISHED:
            footer += f": {row['error']}"
        self.save(footer=footer + " ---", final=True)
