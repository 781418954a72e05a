"""A transfer's files as downloads, shared by the API and the pages. Torch-free: stored files
are streamed as they were saved, never loaded; the genotype and the model card are written
from the row."""

from __future__ import annotations

import json

from django.http import Http404, HttpResponse

from webapp.cells.downloads import genotype_json_bytes
from webapp.storage import stored_file_response
from webapp.transfers.models import Transfer
from webapp.transfers.selectors import TRANSFER_FILES, transfer_has_file


def transfer_filename(transfer: Transfer, kind: str) -> str:
    return f"transfer{transfer.pk}-{transfer.cell_hash[:12]}-{TRANSFER_FILES[kind][1]}"


def transfer_file_response(transfer: Transfer, kind: str) -> HttpResponse:
    """The file as an attachment; 404 for a kind not known, a file the transfer does not have
    (yet), or a stored name that points outside MEDIA_ROOT (`../`, an absolute path)."""
    if kind not in TRANSFER_FILES:
        raise Http404(f"No such file; the files are {', '.join(TRANSFER_FILES)}.")
    missing = "This transfer has no such file yet."
    field_name, _, content_type = TRANSFER_FILES[kind]
    filename = transfer_filename(transfer, kind)
    if field_name is not None:
        return stored_file_response(getattr(transfer, field_name), filename=filename, missing=missing,
                                    content_type=content_type)
    if not transfer_has_file(transfer, kind):
        raise Http404(missing)
    if kind == "genotype":
        body = genotype_json_bytes(transfer.genotype)
    elif kind == "card.md":
        body = transfer.model_card_md.encode()
    else:
        body = (json.dumps(transfer.model_card, indent=2) + "\n").encode()
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
