"""A search's analysis page, its figures' data as JSON (drawn by static/js/analysis.js) and the
trials' exports. Every view reads the search through `search_get_for_user`: another team's
search is a 404, and any role of the team may read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.analysis import exports, selectors
from webapp.searches.selectors import search_get_for_user

#: The figures, by the name their URL and their chart element carry.
FIGURES: dict[str, Callable[..., dict[str, Any]]] = {
    "curves": selectors.learning_curves,
    "cost": selectors.reward_against_cost,
    "ops": selectors.op_frequencies,
    "controller": selectors.controller_updates,
}


@require_GET
def analysis_page(request: HttpRequest, pk: int) -> HttpResponse:
    search = search_get_for_user(user=request.user, search_id=pk)
    return render(request, "analysis/page.html", {"search": search})


def _figure_view(name: str) -> Callable[[HttpRequest, int], JsonResponse]:
    build = FIGURES[name]

    @require_GET
    def view(request: HttpRequest, pk: int) -> JsonResponse:
        return JsonResponse(build(search=search_get_for_user(user=request.user, search_id=pk)))

    view.__name__ = view.__qualname__ = f"analysis_{name}_data"
    view.__doc__ = f"The {name} figure's data: {build.__doc__}"
    return view


figure_views = {name: _figure_view(name) for name in FIGURES}


@require_GET
def trials_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    search = search_get_for_user(user=request.user, search_id=pk)
    response = StreamingHttpResponse(exports.trials_csv(selectors.trial_export_rows(search=search)),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="search-{search.pk}-trials.csv"'
    return response


@require_GET
def trials_parquet(request: HttpRequest, pk: int) -> FileResponse:
    search = search_get_for_user(user=request.user, search_id=pk)
    return FileResponse(exports.trials_parquet(selectors.trial_export_rows(search=search)), as_attachment=True,
                        filename=f"search-{search.pk}-trials.parquet", content_type="application/vnd.apache.parquet")
