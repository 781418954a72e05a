"""The transfers' reconciler: requeues a transfer whose worker went silent (it resumes from its
last checkpoint) and resends one whose message looks lost (webapp.runs.services.runs_reconcile).
Run by celery beat (`transfers.reconcile`, settings.CELERY_BEAT_SCHEDULE), like searches.reconcile
for trials."""

from __future__ import annotations

from webapp.runs.services.reconcile import runs_reconcile
from webapp.transfers.models import Transfer
from webapp.transfers.services.lifecycle import queue_transfer


def transfers_reconcile() -> dict[str, list[int]]:
    """Repair what dead workers and lost messages left behind; returns what it did."""
    return runs_reconcile(Transfer, queue=queue_transfer)

