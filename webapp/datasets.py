"""Where the workers read a dataset's files: CELLSEARCH_DATA_ROOT/<dataset>. Torch-free."""

from __future__ import annotations

import os

from django.conf import settings

from searchcore.errors import UnknownNameError


def dataset_root(dataset: str) -> str | None:
    """CELLSEARCH_DATA_ROOT/<dataset> for the datasets that need files; None for the others
    (digits ships in a package) and for a dataset not known."""
    from searchcore.data import DATASETS

    try:
        needs_root = DATASETS.get(dataset).needs_root
    except UnknownNameError:
        return None
    return os.path.join(settings.CELLSEARCH_DATA_ROOT, dataset) if needs_root else None
