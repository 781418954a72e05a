"""Writes for transfers, one module a job: `lifecycle` (validate, create, pause, resume, cancel:
what the web process calls), `training` (a gpu worker's claim, training and results; only the
tasks import it) and `reconcile` (beat's repairs)."""

from webapp.transfers.services.lifecycle import (
    transfer_cancel,
    transfer_create,
    transfer_pause,
    transfer_resume,
    transfer_settable_fields,
    validate_transfer_config,
)

__all__ = ["transfer_cancel", "transfer_create", "transfer_pause", "transfer_resume", "transfer_settable_fields",
           "validate_transfer_config"]
