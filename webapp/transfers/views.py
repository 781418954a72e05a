"""Pages for transfers: the list, the launch form (from a cell or a trial), a transfer's live
page with its steering buttons, and its downloads.

Thin views: read through the selectors (scoped to the user's teams), write through the
services, render templates. No torch here.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.cells.diagrams import cell_diagram_svg
from webapp.steering import refuse, steer
from webapp.teams.permissions import perms_for, require_perm
from webapp.transfers import services
from webapp.transfers.downloads import transfer_file_response
from webapp.transfers.forms import TransferCreateForm
from webapp.transfers.models import Transfer
from webapp.transfers.selectors import (
    transfer_decision_team_id,
    transfer_downloads,
    transfer_get_for_user,
    transfer_list_for_user,
    transfer_network,
    transfer_progress,
    transfer_source_get_for_user,
)
from webapp.trials.views import genotype_pretty, inline_svg

logger = logging.getLogger(__name__)

TRANSFERS_PER_PAGE = 25
#: The preset the form starts from for a dataset that needs no files (digits trains in minutes on a CPU).
DEFAULT_PRESET = "quick"


def _diagram(*, cell_hash: str, genotype: dict) -> tuple[str | None, str | None]:
    try:
        svg = cell_diagram_svg(cell_hash=cell_hash, genotype=genotype)
    except Exception as exc:  # noqa: BLE001 - a drawing failure must not take the page down
        logger.warning("could not draw cell %s: %s", cell_hash[:12], exc)
        return None, f"The cell could not be drawn: {exc}"
    return mark_safe(inline_svg(svg)), None  # Graphviz output of a validated genotype


def _presets() -> dict[str, dict]:
    """Each preset's settings in full, for the form's script to fill the fields with."""
    from searchcore.transfer import TRANSFER_PRESETS, transfer_config

    return {name: transfer_config(name).to_dict() for name in TRANSFER_PRESETS.names()}


@require_GET
def transfer_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(transfer_list_for_user(user=request.user), TRANSFERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "transfers/list.html", {"page": page})


@require_http_methods(["GET", "POST"])
def transfer_new(request: HttpRequest) -> HttpResponse:
    """Train a cell at full size: `?cell=<hash>` (the team's best trial of it) or `?trial=<id>`,
    and `&decision=<id>` when launched from the review decision that approved the cell (the
    source is then that decision's team's trial). Needs transfers.launch in the source's team."""
    params = request.POST if request.method == "POST" else request.GET
    trial_id = params.get("trial")
    if not trial_id and not params.get("cell"):
        messages.info(request, "Pick a cell to train at full size: “Train at full size…” on a cell or a trial.")
        return redirect("cells:list")
    decision_text = (params.get("decision") or "").strip()
    decision = int(decision_text) if decision_text.isdigit() else None
    team_id = None
    if decision_text:
        team_id = transfer_decision_team_id(user=request.user, decision_id=decision) if decision else None
        if team_id is None:
            raise Http404("No review decision of your teams has this id.")
    source = transfer_source_get_for_user(user=request.user, cell_hash=params.get("cell") or None,
                                          trial_id=int(trial_id) if trial_id and trial_id.isdigit() else None,
                                          team_id=team_id)
    try:
        require_perm(request.user, "transfers.launch", source.search)
    except PermissionDenied as error:
        return refuse(request, error, verb="launch", noun="transfer", to="transfers:list")
    presets = _presets()
    if request.method == "POST":
        form = TransferCreateForm(request.POST)
        if form.is_valid():
            try:
                transfer = services.transfer_create(user=request.user, source_trial=source, decision=decision,
                                                    **form.service_kwargs())
            except ValidationError as error:
                form.add_service_errors(error)
            except PermissionDenied as error:  # the role changed since the form was shown
                return refuse(request, error, verb="launch", noun="transfer", to="transfers:list")
            else:
                messages.success(request, f"Transfer “{transfer}” queued.")
                return redirect("transfers:detail", pk=transfer.pk)
    else:
        preset = DEFAULT_PRESET if DEFAULT_PRESET in presets else None
        initial = {"preset": preset or "", **(presets.get(preset or "", {}))}
        form = TransferCreateForm(initial=initial)
    diagram, diagram_error = _diagram(cell_hash=source.cell_hash, genotype=source.genotype)
    return render(request, "transfers/new.html", {
        "form": form, "source": source, "presets": presets, "diagram": diagram, "diagram_error": diagram_error,
        "decision": decision,
    })


def _context(request: HttpRequest, transfer: Transfer) -> dict:
    return {"transfer": transfer, "live": transfer.live, "epochs": transfer.epochs or [],
            "progress": transfer_progress(transfer=transfer), "network": transfer_network(transfer=transfer),
            "downloads": transfer_downloads(transfer=transfer),
            "perms": perms_for(request.user, transfer)}  # the buttons the user's role may use


@require_GET
def transfer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = transfer_get_for_user(user=request.user, transfer_id=pk)
    diagram, diagram_error = _diagram(cell_hash=transfer.cell_hash, genotype=transfer.genotype)
    return render(request, "transfers/detail.html", _context(request, transfer) | {
        "diagram": diagram, "diagram_error": diagram_error, "genotype_json": genotype_pretty(transfer.genotype),
    })


@require_GET
def transfer_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled part of the page: status, progress, numbers, downloads and the epochs' data."""
    transfer = transfer_get_for_user(user=request.user, transfer_id=pk)
    return render(request, "transfers/_live.html", _context(request, transfer))


def _steer(request: HttpRequest, pk: int, action, verb: str, done: str) -> HttpResponse:
    transfer = transfer_get_for_user(user=request.user, transfer_id=pk)

    def act() -> None:
        require_perm(request.user, "transfers.steer", transfer)
        action(transfer=transfer)

    return steer(request, act, noun="transfer", verb=verb, done=done, detail="transfers:detail", pk=transfer.pk)


@require_POST
def transfer_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.transfer_pause, "pause", "paused (a running training stops after its current epoch)")


@require_POST
def transfer_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.transfer_resume, "resume", "resumed")


@require_POST
def transfer_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.transfer_cancel, "cancel", "cancelled")


@require_GET
def transfer_file(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    return transfer_file_response(transfer_get_for_user(user=request.user, transfer_id=pk), kind)
