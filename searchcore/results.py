"""What a proxy training reports, and how it fails: plain data, free of torch.

A trial trains in a child process (searchcore.runner), so its results cross a pipe as JSON;
the parent, a CLI loop or a Celery worker, reads them without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from searchcore.errors import SearchcoreError


class TrainingDivergedError(SearchcoreError, FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochMetrics:
    """One epoch. `lr` is the rate its first step used; `seconds` includes validation,
    `images_per_second` counts training images over training time only."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float
    images_per_second: float


@dataclass
class TrainResult:
    """What a trial reports. `reward` follows `config.reward` and uses validation data only;
    `test_acc` is None unless `train_child(evaluate_test=True)` and the dataset has a test split.
    `params` and `mult_adds` describe the proxy network as built (auxiliary head excluded)."""

    reward: float
    val_acc: float
    best_val_acc: float
    test_acc: float | None
    params: int
    mult_adds: int
    epochs: list[EpochMetrics]
    stopped: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        return cls(**{**data, "epochs": [EpochMetrics(**epoch) for epoch in data["epochs"]]})
