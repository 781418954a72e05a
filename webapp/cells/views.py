"""The best cells a team has found, ranked by reward."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from searchcore.errors import SearchcoreError
from webapp.cells.downloads import DartsUnsupportedError, genotype_darts
from webapp.cells.selectors import cell_result_list_for_user
from webapp.teams.permissions import team_ids_with_perm

CELLS_PER_PAGE = 25


def _has_darts(genotype: dict) -> bool:
    try:
        genotype_darts(genotype)
    except (DartsUnsupportedError, SearchcoreError):
        return False
    return True


@require_GET
def cell_list(request: HttpRequest) -> HttpResponse:
    dataset = request.GET.get("dataset") or None
    results = cell_result_list_for_user(user=request.user, dataset=dataset)
    page = Paginator(results, CELLS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for result in page.object_list:  # 25 rows: cheap to parse, and a DARTS link only where one exists
        result.has_darts = _has_darts(result.cell.genotype)
    datasets = cell_result_list_for_user(user=request.user).order_by("dataset").values_list(
        "dataset", flat=True).distinct()
    return render(request, "cells/list.html", {
        "page": page, "dataset": dataset or "", "datasets": list(datasets),
        "launch_teams": team_ids_with_perm(request.user, "transfers.launch"),
    })
