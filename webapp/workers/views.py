"""The workers page, and the polled worker-log part of a trial's page."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.trials.models import Trial
from webapp.trials.selectors import trial_get_for_user
from webapp.workers.selectors import worker_list, worker_rows_for_user

WORKERS_PER_PAGE = 50


@require_GET
def worker_list_page(request: HttpRequest) -> HttpResponse:
    page = Paginator(worker_list(), WORKERS_PER_PAGE).get_page(request.GET.get("page"))
    rows = worker_rows_for_user(user=request.user, workers=page.object_list)
    return render(request, "workers/list.html", {"page": page, "rows": rows,
                                                 "heartbeat_timeout": f"{settings.CELLSEARCH_HEARTBEAT_TIMEOUT} s"})


@require_GET
def trial_log(request: HttpRequest, pk: int) -> HttpResponse:
    """A trial's worker log (templates/trials/_log.html), polled while the trial trains."""
    trial = trial_get_for_user(user=request.user, trial_id=pk)
    return render(request, "trials/_log.html", {"trial": trial, "live": trial.status in Trial.IN_FLIGHT})
