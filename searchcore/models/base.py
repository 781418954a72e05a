"""What proxy training asks of every network a genotype format builds."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import nn


class ChildNetwork(nn.Module, ABC):
    """A network proxy training can drive: besides `forward` (logits, or logits and auxiliary
    logits while training), drop path that follows training progress."""

    @abstractmethod
    def set_drop_path_progress(self, fraction: float) -> None:
        """Scale drop path to `fraction` = step / total steps of training (0: drop nothing)."""
