"""Storing a worker's local files (checkpoints, exports) in Django storage, the artifact store
every machine shares.

A write can fail half way (the disk under MEDIA_ROOT fills up): the partial file is removed, so
nothing on a page or in a download is ever a truncated checkpoint, and the caller gets one
error with the reason to record.
"""

from __future__ import annotations

import logging

from django.core.files import File
from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)


class StorageWriteError(Exception):
    """A file could not be stored; the message names it and gives the system's reason."""


def store_file(*, name: str, path: str) -> str:
    """Save the local file at `path` under `name` (or a free variant of it, if that is taken);
    returns the stored name. Raises StorageWriteError, leaving no partial file, when the write fails."""
    # Names are per trial attempt or per transfer, written by one worker at a time, so the free
    # name chosen here is the one save() writes to.
    stored = default_storage.get_available_name(name)
    try:
        with open(path, "rb") as f:
            return default_storage.save(stored, File(f, name=stored))
    except OSError as exc:
        try:
            default_storage.delete(stored)
        except OSError:
            logger.warning("could not remove the partial file %s", stored, exc_info=True)
        raise StorageWriteError(f"could not store {name}: {exc.strerror or exc}") from exc
