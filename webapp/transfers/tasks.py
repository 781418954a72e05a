"""Celery tasks of transfers: training on the gpu queue, the reconciler on the control queue (beat)."""

from celery import shared_task

from webapp.transfers.services.reconcile import transfers_reconcile
from webapp.transfers.services.training import transfer_run


@shared_task(name="transfers.train_transfer")
def train_transfer(transfer_id: int) -> str:
    """Claim and train one transfer, resuming from its last checkpoint (a duplicate message finds
    nothing to claim and returns)."""
    transfer = transfer_run(transfer_id=transfer_id)
    return "skipped" if transfer is None else transfer.status


@shared_task(name="transfers.reconcile")
def reconcile() -> dict:
    """Requeue transfers whose worker went silent or whose message was lost."""
    return transfers_reconcile()
