"""A trial's checkpoint as a download, shared by the API and the pages. Torch-free: the file
is streamed from storage as it was saved, never loaded."""

from __future__ import annotations

import posixpath

from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse, Http404

from webapp.trials.selectors import trial_has_checkpoint


def checkpoint_filename(trial) -> str:
    ext = posixpath.splitext(trial.checkpoint.name)[1] or ".pt"
    return f"search{trial.search_id}-trial{trial.index}-{trial.cell_hash[:12]}{ext}"


def checkpoint_response(trial) -> FileResponse:
    """The trial's checkpoint as an attachment, streamed; 404 when it has none, or when its
    stored name points outside MEDIA_ROOT (`../`, an absolute path: storage refuses those)."""
    try:
        if not trial_has_checkpoint(trial):
            raise Http404("This trial kept no checkpoint.")
        file = trial.checkpoint.open("rb")
    except SuspiciousFileOperation:
        raise Http404("This trial kept no checkpoint.") from None
    return FileResponse(file, as_attachment=True, filename=checkpoint_filename(trial),
                        content_type="application/octet-stream")
