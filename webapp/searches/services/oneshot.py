"""A one-shot search's supernet phase: one long job on a gpu worker (searchcore.runner.run_oneshot)
that trains shared weights on sampled cells and ranks cells by their shared-weight accuracy.

The control step starts it (`oneshot_start`) instead of asking a strategy; `oneshot_run` is what
the `train_oneshot` task runs. A OneShotRun is a ResumableRun, as a transfer is: claimed per
attempt, its `last.pt` stored after every epoch with that epoch's report (loss, accuracy, the
sampled cells' shared-weight accuracy, the best cells so far), resumed on any worker after a
kill, paused and resumed with its search. When it finishes, its ranking is recorded and a
control step issues the best cells as the search's trials; when it fails for good, the search
fails with its reason.

The worker side never imports torch: the runner's parent side is torch-free.
"""

from __future__ import annotations

import logging
import os
import tempfile

from django.db import transaction
from django.utils import timezone

from webapp import dispatch
from webapp.datasets import dataset_root
from webapp.runs.services.reconcile import runs_reconcile
from webapp.runs.services.training import (
    StoredEpochs,
    download,
    heartbeat,
    ours,
    run_attempt_lost,
    run_claim,
    run_failed,
    run_paused_for_storage,
    run_stopped,
    spent,
)
from webapp.searches.models import OneShotRun, Search
from webapp.searches.services.lifecycle import queue_oneshot, search_fail
from webapp.trials.services import runner_policy, threads_per_training, worker_device

logger = logging.getLogger(__name__)

def search_oneshot_config(search: Search):
    """The search's OneShotConfig (searchcore.oneshot.oneshot_config_for_search), without a data root."""
    from searchcore.oneshot import oneshot_config_for_search

    return oneshot_config_for_search(search.strategy, search.strategy_options, proxy=search.proxy_config,
                                     top_k=search.budget, seed=search.seed, space=search.space,
                                     space_options=search.space_options)


def oneshot_start(*, search: Search) -> OneShotRun:
    """The search's run, created and queued (once the caller's transaction commits) when it has
    none yet. Called by the control step under the search's lock."""
    run = OneShotRun.objects.filter(search=search).first()
    if run is not None:
        return run
    run = OneShotRun.objects.create(search=search, config=search_oneshot_config(search).to_dict(),
                                    status=OneShotRun.Status.PENDING, task_id=dispatch.new_task_id(),
                                    heartbeat_at=timezone.now())
    queue_oneshot(run.pk, run.task_id)
    return run


# -- the gpu worker -----------------------------------------------------------------------------


def oneshot_run(*, run_id: int) -> OneShotRun | None:
    """Claim and train the run (module docstring); returns it, or None when there was nothing to train."""
    run = run_claim(OneShotRun, pk=run_id)
    if run is None:
        logger.info("one-shot run %s: not claimable here; nothing to do", run_id)
        return None
    Search.objects.filter(pk=run.search_id, status=Search.Status.QUEUED).update(
        status=Search.Status.RUNNING, started_at=timezone.now())
    with tempfile.TemporaryDirectory(prefix="cellsearch-oneshot-") as out_dir:
        _train(run, out_dir)
    run.refresh_from_db()
    return run


def oneshot_config_for_worker(run: OneShotRun):
    """The stored OneShotConfig, with the server's data folder for datasets that need files."""
    from searchcore.oneshot import OneShotConfig

    config = dict(run.config)
    proxy = dict(config["proxy"])
    proxy["data_root"] = dataset_root(proxy["dataset"])
    return OneShotConfig.from_dict({**config, "proxy": proxy})


def _train(run: OneShotRun, out_dir: str) -> None:
    from searchcore import runner
    from searchcore.errors import SearchcoreError
    from searchcore.oneshot_train import LAST_CHECKPOINT

    stored = StoredEpochs(run)
    last_path = os.path.join(out_dir, LAST_CHECKPOINT)
    if download(run.last_checkpoint, last_path):
        logger.info("one-shot run %s, attempt %s: resumes after epoch %s", run.pk, run.attempts, run.checkpoint_epoch)

    def on_epoch(report) -> bool:
        return stored.record(report.to_dict(), {"last_checkpoint": last_path})

    config = oneshot_config_for_worker(run)
    try:
        outcome = runner.run_oneshot(config, out_dir=out_dir, on_epoch=on_epoch, on_beat=heartbeat(run),
                                     num_threads=threads_per_training(), policy=runner_policy())
    except SearchcoreError as exc:  # TrialAborted, or stored settings this version refuses
        _failed(run, error=str(exc), epochs=stored.epochs)
        return
    if outcome.status == "lost":
        logger.warning("one-shot run %s, attempt %s: %s", run.pk, run.attempts, outcome.message)
        if run_attempt_lost(run, reason=outcome.message, epochs=stored.epochs, queue=queue_oneshot):
            _fail_search(run)
        return
    if outcome.status == "failed":
        _failed(run, error=outcome.message, epochs=stored.epochs)
        return
    if stored.not_stored:
        run_paused_for_storage(run, reason=stored.not_stored)
        return
    if outcome.status == "stopped" or outcome.result is None or outcome.result.stopped:
        run_stopped(run)
        return
    _finish(run, outcome.result, device=worker_device(config.proxy))


def _failed(run: OneShotRun, *, error: str, epochs: list[dict]) -> None:
    logger.warning("one-shot run %s failed: %s", run.pk, error)
    if run_failed(run, error=error, epochs=epochs):
        _fail_search(run)


def _fail_search(run: OneShotRun) -> None:
    run.refresh_from_db(fields=["error"])
    search_fail(search_id=run.search_id, error=f"the supernet failed: {run.error}")


@transaction.atomic
def _finish(run: OneShotRun, result, *, device: str) -> None:
    """Record the ranking and the epochs (every attempt's: the result's), and queue the control
    step that issues the top cells as trials."""
    if not ours(run).update(status=OneShotRun.Status.FINISHED, final=[vars(cell) for cell in result.final],
                            top=[vars(cell) for cell in result.top], epochs=[m.to_dict() for m in result.history],
                            device=device or "cpu", finished_at=timezone.now(), heartbeat_at=timezone.now(),
                            pause_requested=False, error="", **spent(run)):
        logger.info("one-shot run %s: no longer ours when it finished; result dropped", run.pk)
        return
    dispatch.queue_advance_search(search_id=run.search_id)


# -- repairs --------------------------------------------------------------------------------------


def oneshot_reconcile() -> dict[str, list[int]]:
    """Requeue runs whose worker went silent, resend lost messages; a run failed for good fails its search."""
    done = runs_reconcile(OneShotRun, queue=queue_oneshot)
    for run in OneShotRun.objects.filter(pk__in=done["failed"]):
        _fail_search(run)
    return done
