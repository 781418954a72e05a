"""A trial's checkpoint as a download, shared by the API and the pages. Torch-free: the file
is streamed from storage as it was saved, never loaded."""

from __future__ import annotations

import posixpath

from django.http import FileResponse

from webapp.storage import stored_file_response


def checkpoint_filename(trial) -> str:
    ext = posixpath.splitext(trial.checkpoint.name)[1] or ".pt"
    return f"search{trial.search_id}-trial{trial.index}-{trial.cell_hash[:12]}{ext}"


def checkpoint_response(trial) -> FileResponse:
    """The trial's checkpoint as an attachment, streamed; 404 when it has none, or when its
    stored name points outside MEDIA_ROOT (`../`, an absolute path: storage refuses those)."""
    return stored_file_response(trial.checkpoint, filename=checkpoint_filename(trial),
                                missing="This trial kept no checkpoint.")
