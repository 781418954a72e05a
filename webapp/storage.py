"""Storing a worker's local files (checkpoints, exports) in Django storage, the artifact store
every machine shares: local files under MEDIA_ROOT, or an S3-compatible store when
CELLSEARCH_STORAGE_URL names one (webapp/storage_settings.py).

A write can fail half way (the disk under MEDIA_ROOT fills up, the store refuses or cannot be
reached): the partial file is removed, so nothing on a page or in a download is ever a truncated
checkpoint, and the caller gets one error with the reason to record.
"""

from __future__ import annotations

import logging

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)


_FAILURES = (OSError, BotoCoreError, ClientError, Boto3Error)


class StorageWriteError(Exception):
    """A file could not be stored; the message names it and gives the system's reason."""


class S3ArtifactStorage(S3Storage):
    """django-storages' S3 backend that refuses, as the local one does, a stored name that would
    leave the store's root (`../`, an absolute path): such a name in a row is never a file of ours,
    and the download helpers answer 404 for SuspiciousFileOperation whatever the backend."""

    def _normalize_name(self, name):
        if name.startswith("/") or ".." in name.split("/"):
            raise SuspiciousFileOperation(f"the stored name {name!r} leaves the artifact store")
        return super()._normalize_name(name)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', exc)}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def store_file(*, name: str, path: str) -> str:
    """Save the local file at `path` under `name` (or a free variant of it, if that is taken);
    returns the stored name. Raises StorageWriteError, leaving no partial file, when the write fails."""
    # Names are per trial attempt or per transfer, written by one worker at a time, so the free
    # name chosen here is the one save() writes to.
    try:
        stored = default_storage.get_available_name(name)
    except _FAILURES as exc:  # the store cannot be reached: nothing was written
        raise StorageWriteError(f"could not store {name}: {_reason(exc)}") from exc
    try:
        with open(path, "rb") as f:
            return default_storage.save(stored, File(f, name=stored))
    except _FAILURES as exc:
        try:
            default_storage.delete(stored)
        except _FAILURES:
            logger.warning("could not remove the partial file %s", stored, exc_info=True)
        raise StorageWriteError(f"could not store {name}: {_reason(exc)}") from exc


def stored_file_exists(file) -> bool:
    """Whether a FileField holds a name and its file is still in storage. A name that leaves
    the store (`../`, an absolute path) is never a file we offer."""
    try:
        return bool(file.name) and file.storage.exists(file.name)
    except SuspiciousFileOperation:
        return False


def stored_file_response(file, *, filename: str, missing: str,
                         content_type: str = "application/octet-stream") -> FileResponse:
    """A FileField's file as an attachment, streamed as it was saved (never loaded); 404 with
    `missing` when there is none (see `stored_file_exists`)."""
    if not stored_file_exists(file):
        raise Http404(missing)
    return FileResponse(file.open("rb"), as_attachment=True, filename=filename, content_type=content_type)
