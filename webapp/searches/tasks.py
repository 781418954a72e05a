"""Celery tasks of the control queue: they take ids and call services."""

from celery import shared_task
from django.db import OperationalError

from webapp.searches.services.control import search_advance
from webapp.searches.services.lifecycle import search_fail
from webapp.searches.services.oneshot import oneshot_run
from webapp.searches.services.reconcile import searches_reconcile


@shared_task(name="searches.advance_search", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def advance_search(search_id: int) -> list[int]:
    """One control step of a search: tell finished trials, ask for new ones, queue them."""
    return search_advance(search_id=search_id)


@shared_task(name="searches.fail_search", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def fail_search(search_id: int, error: str) -> None:
    """End a search that a trial found cannot go on (settings no trial can train with)."""
    search_fail(search_id=search_id, error=error)


@shared_task(name="searches.reconcile")
def reconcile() -> dict:
    """Requeue trials whose worker died or whose message was lost; nudge stalled searches."""
    return searches_reconcile()


@shared_task(name="searches.train_oneshot")
def train_oneshot(run_id: int) -> str:
    """Claim and train a one-shot search's supernet, resuming from its last checkpoint (a
    duplicate message finds nothing to claim and returns). Routed to the gpu queue."""
    run = oneshot_run(run_id=run_id)
    return "skipped" if run is None else run.status
