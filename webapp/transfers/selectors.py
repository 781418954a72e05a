"""Reads of transfers, scoped to the user's teams: another team's transfer, trial or cell is a 404."""

from __future__ import annotations

import statistics
from typing import Any

from django.apps import apps
from django.db.models import F, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from searchcore.errors import SearchcoreError
from webapp.storage import stored_file_exists
from webapp.teams.models import Membership
from webapp.transfers.models import Transfer
from webapp.trials.models import Trial

#: The files a transfer offers for download: kind → (model field, or None for one made on the fly,
#: the download's suffix, its content type).
TRANSFER_FILES: dict[str, tuple[str | None, str, str]] = {
    "best": ("best_checkpoint", "best.pt", "application/octet-stream"),
    "last": ("last_checkpoint", "last.pt", "application/octet-stream"),
    "onnx": ("onnx_file", "model.onnx", "application/octet-stream"),
    "torchscript": ("torchscript_file", "model.ts", "application/octet-stream"),
    "genotype": (None, "genotype.json", "application/json"),
    "card.md": (None, "model-card.md", "text/markdown; charset=utf-8"),
    "card.json": (None, "model-card.json", "application/json"),
}


def transfer_list_for_user(*, user) -> QuerySet[Transfer]:
    """The transfers of the user's teams, newest first, without the heavy JSON columns."""
    team_ids = list(Membership.objects.filter(user=user).values_list("team_id", flat=True))
    return (Transfer.objects.filter(team_id__in=team_ids).select_related("owner", "source_search")
            .defer("genotype", "model_card", "model_card_md").order_by("-created_at", "-id"))


def transfer_get_for_user(*, user, transfer_id: int) -> Transfer:
    return get_object_or_404(
        Transfer.objects.select_related("team", "owner", "cell", "source_trial", "source_search", "decision",
                                        "decision__actor")
        .filter(team__members=user), pk=transfer_id)


def transfer_source_get_for_user(*, user, cell_hash: str | None = None, trial_id: int | None = None,
                                 team_id: int | None = None) -> Trial:
    """The trial a transfer of a cell starts from: the trial itself, or, for a cell hash, the
    team's best finished trial of that cell (any of its trials when none finished); `team_id`
    keeps to that team's trials. 404 when no search of the user's teams has tried it."""
    trials = Trial.objects.select_related("search", "search__team", "cell").filter(search__team__members=user)
    if team_id is not None:
        trials = trials.filter(search__team_id=team_id)
    if trial_id is not None:
        return get_object_or_404(trials, pk=trial_id)
    trial = (trials.filter(cell_hash=cell_hash or "")
             .order_by(F("reward").desc(nulls_last=True), "id").first())
    if trial is None:
        raise Http404("No cell with this hash among your team's trials.")
    return trial


def transfer_decision_team_id(*, user, decision_id: int) -> int | None:
    """The team of a review decision (a reviews Activity row) in one of the user's teams, else
    None: a transfer launched from it starts from that team's trial of the cell."""
    activity_model = apps.get_model("reviews", "Activity")  # by name: reviews may import transfers, not back
    return (activity_model.objects.filter(pk=decision_id, team__members=user)
            .values_list("team_id", flat=True).first())


def transfer_has_file(transfer: Transfer, kind: str) -> bool:
    """Whether the transfer can offer this download now (a stored file still in storage, or a card written)."""
    field_name, _, _ = TRANSFER_FILES[kind]
    if field_name is None:
        return kind == "genotype" or bool(transfer.model_card_md)
    return stored_file_exists(getattr(transfer, field_name))


def transfer_downloads(*, transfer: Transfer) -> list[str]:
    """The kinds of file the transfer offers now, in TRANSFER_FILES order."""
    return [kind for kind in TRANSFER_FILES if transfer_has_file(transfer, kind)]


def transfer_progress(*, transfer: Transfer) -> dict[str, Any]:
    """Epochs done of all, the latest images per second, and the time left: the median epoch's
    seconds × the epochs left (None until an epoch has finished, or once it has ended)."""
    epochs = transfer.epochs or []
    total = transfer.epochs_total
    done = len(epochs)
    seconds = [e["seconds"] for e in epochs if isinstance(e.get("seconds"), (int, float))]
    eta = None
    if seconds and total is not None and transfer.status not in Transfer.ENDED:
        eta = statistics.median(seconds) * max(total - done, 0)
    return {
        "epochs_done": done,
        "epochs_total": total,
        "percent": round(100 * done / total) if total else 0,
        "images_per_second": epochs[-1].get("images_per_second") if epochs else None,
        "eta_seconds": eta,
        "best_val_acc": max((e["val_acc"] for e in epochs if e.get("val_acc") is not None), default=None),
    }


def transfer_network(*, transfer: Transfer) -> dict[str, int] | None:
    """N@F of the network the transfer trains (torch-free: TransferConfig.network_widths), or None
    for a stored genotype or config this version cannot read."""
    from searchcore.spaces import parse_genotype
    from searchcore.spaces.nasnet import Genotype
    from searchcore.transfer import TransferConfig

    try:
        config = TransferConfig.from_dict({**transfer.config, "dataset": transfer.dataset})
        cell = parse_genotype(transfer.genotype)
        if not isinstance(cell, Genotype):
            return None
        widths = config.network_widths(cell)
    except (SearchcoreError, TypeError, ValueError):
        return None
    return {"cells": config.cells, "filters": widths.filters, "base_filters": widths.base_filters,
            "concat_states": widths.concat_states}
