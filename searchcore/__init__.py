"""searchcore: NASNet-style cell search in pure PyTorch, usable without the web app."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from searchcore.checkpoints import load_model

__version__ = "0.1.0"
__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    """`searchcore.load_model` imports torch only when asked for: the web process imports searchcore
    (by name, so the import-linter contracts keep the package itself torch-free)."""
    if name == "load_model":
        return importlib.import_module("searchcore.checkpoints").load_model
    raise AttributeError(f"module 'searchcore' has no attribute {name!r}")
