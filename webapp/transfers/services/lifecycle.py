"""A transfer's life as its user steers it: validate its settings once, create (queued on the
gpu queue once this commits), pause, resume and cancel.

Imported by the web process: searchcore is used for its torch-free parts only
(searchcore.transfer, searchcore.data's registry and check_dataset_root).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from searchcore.errors import ConfigError, DatasetNotFoundError, GenotypeError, SearchcoreError
from webapp import dispatch
from webapp.datasets import dataset_root
from webapp.runs.services.lifecycle import run_cancel, run_pause, run_resume
from webapp.teams.permissions import require_perm
from webapp.transfers.models import Transfer

#: TransferConfig fields a transfer may not set, and why.
NOT_SETTABLE = {
    "data_root": "is set by the server (CELLSEARCH_DATA_ROOT/<dataset>), not per transfer",
}


def transfer_settable_fields() -> list[dataclasses.Field]:
    """The TransferConfig fields a form or the API may set: all but the server's data root."""
    from searchcore.transfer import TransferConfig

    return [f for f in dataclasses.fields(TransferConfig) if f.name not in NOT_SETTABLE]


def validate_transfer_config(*, genotype: dict, preset: str | None, dataset: str | None,
                             overrides: dict[str, Any]):
    """Check a transfer's settings without torch and return its TransferConfig (without a data
    root): the preset's values (or the defaults), then `dataset`, then `overrides`.

    Raises ValidationError({field: [message]}): TransferConfig's own errors name their field
    (ConfigError.field), a preset not known is `preset`, a dataset whose folder is missing on the
    server is `dataset`, a cell the training cannot build is `cell`.
    """
    from searchcore.spaces import parse_genotype
    from searchcore.spaces.nasnet import Genotype
    from searchcore.transfer import transfer_config

    for key in overrides:
        if key in NOT_SETTABLE:
            raise ValidationError({key: [NOT_SETTABLE[key]]})
    values = dict(overrides)  # transfer_config: a width given replaces the preset's other kind
    if dataset:
        values["dataset"] = dataset
    try:
        config = transfer_config(preset or None, **values)
    except ConfigError as exc:
        raise ValidationError({exc.field or "config": [str(exc)]}) from None
    except TypeError as exc:  # an unknown keyword
        raise ValidationError({"config": [str(exc)]}) from None
    try:
        cell = parse_genotype(genotype)
        if not isinstance(cell, Genotype):
            raise GenotypeError(f"{cell.format} genotypes are not cells of the nasnet space")
        config.network_widths(cell)
    except ConfigError as exc:
        raise ValidationError({exc.field or "cell": [str(exc)]}) from None
    except (SearchcoreError, TypeError, ValueError, AttributeError) as exc:
        raise ValidationError({"cell": [f"this cell cannot be trained as a transfer: {exc}"]}) from None
    root = dataset_root(config.dataset)
    if root is not None:
        from searchcore.data import check_dataset_root

        try:
            check_dataset_root(config.dataset, root)
        except (DatasetNotFoundError, ConfigError) as exc:
            raise ValidationError({"dataset": [f"{exc} (the workers read {config.dataset} from "
                                               f"CELLSEARCH_DATA_ROOT/{config.dataset})"]}) from None
    return config


#: What makes a reviews Activity row an approval (webapp.reviews: Activity.Verb.STATUS, detail
#: {"to": ReviewStatus.Status.APPROVED}); spelled out here because transfers never imports reviews.
APPROVAL_VERB, APPROVED = "status", "approved"


def transfer_decision_get(*, decision_id: int, team, cell):
    """The reviews Activity row that approved `cell` in `team` with this id, else a
    ValidationError on `decision` (another team's row reads the same as none: no leak)."""
    activity_model = apps.get_model("reviews", "Activity")  # by name: reviews may import transfers, not back
    decision = (activity_model.objects.select_related("actor")
                .filter(pk=decision_id, team=team, cell=cell, verb=APPROVAL_VERB, detail__to=APPROVED).first())
    if decision is None:
        raise ValidationError({"decision": [f"no approval of this cell in team {team.name!r} has id {decision_id}"]})
    return decision


@transaction.atomic
def transfer_create(*, user, source_trial, name: str = "", preset: str | None = None, dataset: str | None = None,
                    overrides: dict[str, Any] | None = None, decision: int | None = None) -> Transfer:
    """A transfer of `source_trial`'s cell (a trial of one of the user's teams, read through
    transfers.selectors), in that trial's team, queued on the gpu queue once this commits.
    PermissionDenied unless the user's role there holds transfers.launch. `decision`: the id of
    the review decision (an approving reviews Activity row of that cell and team) it is launched
    from."""
    team = source_trial.search.team
    require_perm(user, "transfers.launch", team)
    approval = None if decision is None else transfer_decision_get(decision_id=decision, team=team,
                                                                   cell=source_trial.cell)
    if len(name) > 200:
        raise ValidationError({"name": ["at most 200 characters"]})
    config = validate_transfer_config(genotype=source_trial.genotype, preset=preset, dataset=dataset,
                                      overrides=overrides or {})
    stored = {key: value for key, value in config.to_dict().items() if key not in ("dataset", "data_root")}
    task_id = dispatch.new_task_id()
    transfer = Transfer.objects.create(
        team=team, owner=user, name=name, cell=source_trial.cell, decision=approval,
        genotype=source_trial.genotype, cell_hash=source_trial.cell_hash, source_trial=source_trial,
        source_search=source_trial.search, preset=preset or "", dataset=config.dataset, config=stored,
        status=Transfer.Status.PENDING, task_id=task_id, heartbeat_at=timezone.now(),
    )
    dispatch.queue_train_transfer(transfer_id=transfer.pk, task_id=task_id)
    return transfer


def transfer_pause(*, transfer: Transfer) -> Transfer:
    """A queued transfer is paused at once (its message is dropped); a running one stops after
    its current epoch, keeping that epoch's checkpoint, and its worker marks it paused."""
    return run_pause(transfer, noun="transfer")


def transfer_resume(*, transfer: Transfer) -> Transfer:
    """Carry on a paused transfer from its last checkpoint (queued again once this commits), or
    take back a pause its worker has not acted on yet."""
    return run_resume(transfer, noun="transfer", queue=queue_transfer)


def transfer_cancel(*, transfer: Transfer) -> Transfer:
    """End the transfer for good: a running training is stopped (its task terminated once this
    commits, and its worker's next beat finds it no longer its own). Its checkpoints stay."""
    return run_cancel(transfer, noun="transfer")


def queue_transfer(transfer_id: int, task_id: str) -> None:
    """Send the transfer to the gpu queue once this commits (webapp.runs.services' Queue)."""
    dispatch.queue_train_transfer(transfer_id=transfer_id, task_id=task_id)
