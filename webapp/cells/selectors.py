"""Reads of cells: the best unique cells a team has found."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from webapp.cells.models import Cell, CellResult
from webapp.teams.models import Membership


def cell_result_list_for_user(*, user, dataset: str | None = None, space: str | None = None) -> QuerySet[CellResult]:
    """The user's teams' unique cells, best reward first.

    The user's team ids are read first (one small query): filtering on constant team ids lets
    the database walk the (team, -best_reward) index in order and stop after one page, where
    a join with the memberships made it sort every result of the team first — with their
    genotypes — for each page (0.5 s at 60,000 cells; bench/web_pages.py).
    """
    team_ids = list(Membership.objects.filter(user=user).values_list("team_id", flat=True))
    results = CellResult.objects.filter(team_id__in=team_ids).select_related("cell", "best_trial__search")
    if dataset:
        results = results.filter(dataset=dataset)
    if space:
        results = results.filter(cell__space=space)
    return results.order_by("-best_reward", "id")


def cell_get_for_user(*, user, cell_id: int) -> Cell:
    """A cell one of the user's teams has trained, or 404."""
    return get_object_or_404(Cell.objects.filter(results__team__members=user).distinct(), pk=cell_id)
