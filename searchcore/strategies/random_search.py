"""Random search: every cell drawn uniformly over the space, the baseline of NASNet's Figure 6."""

from __future__ import annotations

from typing import Any

from searchcore.spaces.base import GenotypeLike
from searchcore.strategies.base import Strategy


class RandomSearch(Strategy):
    """Draws from `space.sample`; rewards change nothing."""

    name = "random"

    def _draw(self) -> tuple[GenotypeLike, dict[str, Any]]:
        return self.space.sample(self._rng), {}

    def _learn(self, record: dict[str, Any], reward: float) -> None:
        pass
