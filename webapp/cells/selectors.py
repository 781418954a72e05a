"""Reads of cells: the best unique cells a team has found."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from webapp.cells.models import Cell, CellResult


def cell_result_list_for_user(*, user, dataset: str | None = None, space: str | None = None) -> QuerySet[CellResult]:
    """The user's teams' unique cells, best reward first."""
    results = CellResult.objects.filter(team__members=user).select_related("cell", "best_trial__search")
    if dataset:
        results = results.filter(dataset=dataset)
    if space:
        results = results.filter(cell__space=space)
    return results.order_by("-best_reward", "id")


def cell_get_for_user(*, user, cell_id: int) -> Cell:
    """A cell one of the user's teams has trained, or 404."""
    return get_object_or_404(Cell.objects.filter(results__team__members=user).distinct(), pk=cell_id)
