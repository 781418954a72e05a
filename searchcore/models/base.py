"""What proxy training asks of every network a genotype format builds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor, nn


class ChildNetwork(nn.Module, ABC):
    """A network proxy training can drive: besides `forward` (logits, or logits and auxiliary
    logits while training), drop path that follows training progress."""

    @abstractmethod
    def set_drop_path_progress(self, fraction: float) -> None:
        """Scale drop path to `fraction` = step / total steps of training (0: drop nothing)."""


class Supernet(ChildNetwork):
    """Every cell of a space in one network whose weights they share (one-shot search):
    `set_path` chooses the cell `forward` runs."""

    @abstractmethod
    def set_path(self, genotype: Any) -> None:
        """Run `genotype`'s cell from now on; GenotypeError when it is not a cell of the space."""

    @abstractmethod
    def child_state_dict(self, genotype: Any) -> dict[str, Tensor]:
        """The state dict of the standalone network `genotype` builds, holding its path's weights."""

    @abstractmethod
    def load_child_state_dict(self, genotype: Any, state: dict[str, Tensor]) -> None:
        """Write a standalone network's weights (its `state_dict()`) into `genotype`'s path."""
