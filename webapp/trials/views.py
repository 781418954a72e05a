"""A trial's page: its training curves, its cell drawn, its numbers and its genotype."""

from __future__ import annotations

import json
import logging
import re

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from searchcore.errors import SearchcoreError
from webapp.cells.diagrams import cell_diagram_svg
from webapp.cells.downloads import DartsUnsupportedError, genotype_darts, genotype_in_format_order
from webapp.teams.permissions import has_perm
from webapp.trials.models import Trial
from webapp.trials.selectors import trial_get_for_user, trial_has_checkpoint, trial_network_widths

logger = logging.getLogger(__name__)

_SVG_START = re.compile(r"<svg\b")


def inline_svg(document: bytes) -> str:
    """An SVG document as an element to place in HTML: no XML prolog, doctype or comments."""
    text = document.decode("utf-8")
    match = _SVG_START.search(text)
    return text[match.start():] if match else ""


def genotype_pretty(genotype: dict) -> str:
    """Genotype JSON for reading: one line per key, and one line per block of a cell."""
    lines = []
    for key, value in genotype_in_format_order(genotype).items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = ",\n".join(f"    {json.dumps(v)}" for v in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def _diagram(trial: Trial) -> tuple[str | None, str | None]:
    try:
        svg = cell_diagram_svg(cell_hash=trial.cell_hash, genotype=trial.genotype)
    except Exception as exc:  # noqa: BLE001 - a drawing failure must not take the page down
        logger.warning("could not draw trial %s: %s", trial.pk, exc)
        return None, f"The cell could not be drawn: {exc}"
    return mark_safe(inline_svg(svg)), None  # Graphviz output of a validated genotype


def _darts(trial: Trial) -> str | None:
    try:
        return genotype_darts(trial.genotype)
    except (DartsUnsupportedError, SearchcoreError):
        return None  # not every cell has a DARTS form (concat blocks, the macro space)


def _context(trial: Trial) -> dict:
    return {"trial": trial, "search": trial.search, "live": trial.status in Trial.IN_FLIGHT,
            "epochs": trial.epochs or [], "network": trial_network_widths(trial=trial)}


@require_GET
def trial_detail(request: HttpRequest, pk: int) -> HttpResponse:
    trial = trial_get_for_user(user=request.user, trial_id=pk)
    diagram, diagram_error = _diagram(trial)
    context = _context(trial) | {
        "diagram": diagram, "diagram_error": diagram_error, "darts": _darts(trial),
        "genotype_json": genotype_pretty(trial.genotype), "has_checkpoint": trial_has_checkpoint(trial),
        "can_launch_transfer": has_perm(request.user, "transfers.launch", trial.search),
        # a one-shot search has no strategy state to fork (its sampler lives in the supernet's checkpoint)
        "can_fork": trial.status == Trial.Status.FINISHED and trial.reward is not None
                    and not trial.search.is_oneshot and has_perm(request.user, "searches.launch", trial.search),
    }
    return render(request, "trials/detail.html", context)


@require_GET
def trial_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled part of a trial's page while it trains: its numbers and epoch curves."""
    trial = trial_get_for_user(user=request.user, trial_id=pk)
    return render(request, "trials/_live.html", _context(trial))
