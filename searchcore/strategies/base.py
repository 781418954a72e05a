"""The ask/tell contract every search strategy meets.

A strategy proposes cells (`ask`) and learns from the rewards workers report back (`tell`).
It never trains anything itself, so the same object serves a synchronous CLI loop and a pool
of asynchronous workers: many asks may be outstanding, tells arrive in any order, and a
failed trial is told `None` and simply forgotten.

A strategy samples with replacement, as the papers' do: a cell may come back, and the caller
reuses its reward rather than training it again (NASNet's Figure 6 counts every sampled model
and the top-k *unique* ones). `reject_duplicates` redraws repeats instead, at the price of
controllers learning from cells their policy did not quite sample.

`state_dict` holds only tensors and plain Python data, so `torch.save` and a safe
`weights_only=True` load round-trip it, and a strategy rebuilt from it continues with exactly
the asks the original would have made.
"""

from __future__ import annotations

import copy
import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, get_type_hints

import numpy as np

from searchcore.errors import ConfigError, GenotypeError, SearchcoreError, SpaceExhaustedError
from searchcore.spaces.base import GenotypeLike, SearchSpace

#: Version tag of `Strategy.state_dict`; bump it when the layout changes.
STATE_FORMAT = "cellsearch.strategy/2"
#: The format before hyperparameters such as `reject_duplicates` existed; such a state loads
#: with the values that describe how it ran (`StrategyConfig.LEGACY_HPARAMS`).
LEGACY_STATE_FORMAT = "cellsearch.strategy/1"


class UnknownTrialError(SearchcoreError, KeyError):
    """`tell` named a trial that is not pending: never asked, already told, or failed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Proposal:
    """One cell to train: `trial_id` counts asks from 0, `cell_hash` is the canonical hash."""

    trial_id: int
    genotype: GenotypeLike
    cell_hash: str


@dataclass(frozen=True)
class StrategyConfig:
    """Hyperparameters every strategy shares; subclasses add their own fields."""

    #: Redraw a cell that an earlier ask (pending, told or failed) proposed. Off, as in the
    #: papers: a repeat is a sampled model whose reward the caller reuses.
    reject_duplicates: bool = False
    #: Draws per ask before giving up on a new cell; used only with `reject_duplicates`.
    max_attempts: int = 1000

    #: What a state saved in LEGACY_STATE_FORMAT ran with, for the fields it predates.
    LEGACY_HPARAMS: ClassVar[dict[str, Any]] = {"reject_duplicates": True}

    #: Hyperparameters a fork must keep from its parent: what shapes the learned state.
    FORK_FIXED: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first out-of-range field."""
        if not 1 <= self.max_attempts <= 1_000_000:
            raise ConfigError(f"max_attempts must be in 1..1000000, got {self.max_attempts}")

    def fork_conflicts(self, parent: StrategyConfig) -> list[str]:
        """Why a fork with these hyperparameters cannot start from `parent`'s learned state:
        one message per `FORK_FIXED` field that differs (none: it can)."""
        return [f"{name} must stay {getattr(parent, name)!r} (the parent's), got {getattr(self, name)!r}"
                for name in self.FORK_FIXED if getattr(self, name) != getattr(parent, name)]

    @classmethod
    def from_hparams(cls, strategy: str, hparams: dict[str, Any]) -> StrategyConfig:
        """Check names and types (values often come from CLI flags or web forms), then ranges."""
        types = get_type_hints(cls)
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(hparams) - set(known))
        if unknown:
            raise ConfigError(f"strategy {strategy!r} has no hyperparameter {unknown[0]!r}; known: {', '.join(known)}")
        values = {key: _checked_hparam(strategy, key, types[key], value) for key, value in hparams.items()}
        config = cls(**values)
        config.validate()
        return config


def _checked_hparam(strategy: str, key: str, kind: type, value: Any) -> Any:
    """`value` as a `kind` (bool, int or float), or `ConfigError`; a bool is never taken for a number."""
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"strategy {strategy!r}: hyperparameter {key!r} must be true or false, got {value!r}")
        return value
    accepted = numbers.Integral if kind is int else numbers.Real
    if isinstance(value, bool) or not isinstance(value, accepted) or not math.isfinite(value):
        wanted = "an integer" if kind is int else "a finite number"
        raise ConfigError(f"strategy {strategy!r}: hyperparameter {key!r} must be {wanted}, got {value!r}")
    return kind(value)


class Strategy(ABC):
    """Base class: trial bookkeeping, optional uniqueness, seeding and state; subclasses draw and learn.

    A subclass implements `_draw` (one candidate genotype plus the plain-data record it needs
    to learn from that trial later) and `_learn` (use one reward), and saves whatever else it
    keeps through `_algorithm_state` / `_load_algorithm_state`.
    """

    #: Registry name, set by subclasses.
    name: ClassVar[str] = ""
    #: The hyperparameter dataclass of this strategy.
    config_class: ClassVar[type[StrategyConfig]] = StrategyConfig
    #: Whether a cell given by hand (`enqueue`) is learned from as if the strategy had drawn it.
    #: Evolution may: a told cell simply joins its population. A controller may not: its policy
    #: did not sample the cell, so its reward is an outside evaluation, recorded and not learned.
    learns_from_given_cells: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, *, seed: int = 0, **hparams: Any) -> None:
        self.space = space
        self.config = self.config_class.from_hparams(self.name, hparams)
        self._rng = np.random.default_rng(seed)
        self._next_trial_id = 0
        self._seen_hashes: set[str] = set()
        self._pending: dict[int, dict[str, Any]] = {}
        # Cells given by hand, as genotype dicts, asked before anything the algorithm draws.
        self._enqueued: list[dict[str, Any]] = []

    # -- the ask/tell interface -------------------------------------------------------------
    def ask(self) -> Proposal:
        """Propose the cell the algorithm draws; with `reject_duplicates`, one no earlier ask
        (pending, told or failed) has proposed, drawn again up to `max_attempts` times.

        A cell given with `enqueue` comes first, whatever was asked before: it takes the next
        trial id, and its record says `outside` unless the strategy `learns_from_given_cells`."""
        if self._enqueued:
            return self._ask_enqueued()
        reject = self.config.reject_duplicates
        for _ in range(self.config.max_attempts if reject else 1):
            genotype, record = self._draw()
            cell_hash = genotype.canonical_hash()
            if not reject or cell_hash not in self._seen_hashes:
                break
        else:
            raise SpaceExhaustedError(
                f"strategy {self.name!r} drew no new cell in {self.config.max_attempts} attempts after "
                f"{len(self._seen_hashes)} distinct cells; the {self.space.name!r} space looks exhausted"
            )
        trial_id = self._next_trial_id
        self._next_trial_id += 1
        if reject:
            self._seen_hashes.add(cell_hash)
        self._pending[trial_id] = {**record, "cell_hash": cell_hash}
        return Proposal(trial_id=trial_id, genotype=genotype, cell_hash=cell_hash)

    def tell(self, trial_id: int, reward: float | None) -> None:
        """Report a trial's reward, or `None` if it failed: the strategy then learns nothing from it.

        A repeated cell is told the reward its first trial earned. With `reject_duplicates` a
        failed cell stays among the seen ones, so it is not proposed again; failures such as
        running out of memory are usually the cell's own fault.
        """
        if trial_id not in self._pending:
            if isinstance(trial_id, numbers.Integral) and 0 <= trial_id < self._next_trial_id:
                why = "it was already told"
            else:
                why = f"it was never asked ({self._next_trial_id} trials asked so far)"
            raise UnknownTrialError(f"trial {trial_id!r} is not pending: {why}")
        is_number = isinstance(reward, numbers.Real) and not isinstance(reward, bool)
        if reward is not None and not (is_number and math.isfinite(reward)):
            raise ConfigError(f"reward of trial {trial_id} must be a finite number or None, got {reward!r}")
        record = self._pending.pop(trial_id)
        if reward is not None and not record.get("outside"):
            self._learn(record, float(reward))

    def enqueue(self, genotype: GenotypeLike) -> str:
        """Queue a cell given by hand: the next `ask` proposes it (before anything drawn), and
        its reward is learned from if the strategy `learns_from_given_cells`, else only recorded
        as an outside evaluation. The queue is part of `state_dict`. Returns the cell's hash;
        raises `GenotypeError` when the cell is not one of this strategy's space."""
        checked = self._checked_genotype(genotype)
        self._enqueued.append(checked.to_dict())
        return checked.canonical_hash()

    @property
    def enqueued(self) -> list[str]:
        """Canonical hashes of the cells queued by `enqueue` and not asked yet, in queue order."""
        return [self.space.genotype_from_dict(data).canonical_hash() for data in self._enqueued]

    def _checked_genotype(self, genotype: GenotypeLike) -> GenotypeLike:
        """`genotype` as this space's own genotype; `GenotypeError` if it does not fit the space."""
        to_dict = getattr(genotype, "to_dict", None)
        if not callable(to_dict):
            raise GenotypeError(f"enqueue: expected a genotype, got {type(genotype).__name__}")
        checked = self.space.genotype_from_dict(to_dict())
        # every choice within the space's decisions, and the cell in the form `_draw` gives
        return self.space.decode(self.space.encode(checked))

    def _ask_enqueued(self) -> Proposal:
        genotype = self.space.genotype_from_dict(self._enqueued[0])
        record = self._given_record(genotype)
        cell_hash = genotype.canonical_hash()
        if not self.learns_from_given_cells:
            record = {**record, "outside": True}
        self._enqueued.pop(0)
        trial_id = self._next_trial_id
        self._next_trial_id += 1
        if self.config.reject_duplicates:
            self._seen_hashes.add(cell_hash)
        self._pending[trial_id] = {**record, "cell_hash": cell_hash}
        return Proposal(trial_id=trial_id, genotype=genotype, cell_hash=cell_hash)

    def _given_record(self, genotype: GenotypeLike) -> dict[str, Any]:
        """The `_learn` record of a cell given by hand, as `_draw` would have made it."""
        return {"actions": self.space.encode(genotype)}

    @property
    def pending(self) -> list[int]:
        """Trial ids asked and not yet told, in ask order."""
        return sorted(self._pending)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly, as tensors and plain data (copies, not views)."""
        state = {
            "format": STATE_FORMAT,
            "strategy": self.name,
            "space": {"name": self.space.name, "config": self.space.config()},
            "hparams": asdict(self.config),
            "rng": self._rng.bit_generator.state,
            "next_trial_id": self._next_trial_id,
            "seen_hashes": sorted(self._seen_hashes),
            "pending": self._pending,
            "enqueued": self._enqueued,
            "algorithm": self._algorithm_state(),
        }
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from `state_dict()`; raises `ConfigError` if it belongs to another setup."""
        state = self._checked_state(state)
        current = asdict(self.config)
        for key in sorted(set(current) | set(state["hparams"])):
            saved, now = state["hparams"].get(key), current.get(key)
            if saved != now:
                raise ConfigError(f"strategy state: hyperparameter {key!r} was {saved!r}, this strategy has {now!r}")
        self._rng.bit_generator.state = state["rng"]
        self._next_trial_id = state["next_trial_id"]
        self._seen_hashes = set(state["seen_hashes"])
        self._pending = dict(state["pending"])
        self._enqueued = list(state.get("enqueued", []))  # absent from states saved before enqueue existed
        self._load_algorithm_state(state["algorithm"])

    def load_fork(self, parent_state: dict[str, Any]) -> None:
        """Start as a fork of the strategy that saved `parent_state` (its `state_dict()`).

        What the parent learned carries over (`_load_fork_state`: a controller's policy and
        baseline; evolution starts a new population), its trials do not: the fork counts its own
        from 0, with none pending or queued, and draws from its own seed's stream, so parent and
        fork propose different cells. The cells the parent proposed stay seen, for
        `reject_duplicates`. Hyperparameters may differ from the parent's, except those
        `StrategyConfig.fork_conflicts` names; the strategy and the space may not."""
        state = self._checked_state(parent_state)
        for conflict in self.config.fork_conflicts(self.config_class(**{
                key: value for key, value in state["hparams"].items() if key in asdict(self.config)})):
            raise ConfigError(f"strategy state: cannot fork: {conflict}")
        self._next_trial_id = 0
        self._pending = {}
        self._enqueued = []
        self._seen_hashes = set(state["seen_hashes"])
        self._load_fork_state(state["algorithm"])

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """A copy of a `state_dict()` this strategy's class and space saved (a legacy one with the
        hyperparameters it ran with); `ConfigError` naming what differs otherwise."""
        state = copy.deepcopy(state)
        if state.get("format") == LEGACY_STATE_FORMAT:
            state["hparams"] = {**self.config_class.LEGACY_HPARAMS, **state["hparams"]}
        elif state.get("format") != STATE_FORMAT:
            raise ConfigError(f"strategy state: format must be {STATE_FORMAT!r}, got {state.get('format')!r}")
        if state["strategy"] != self.name:
            raise ConfigError(f"strategy state: saved by {state['strategy']!r}, cannot load into {self.name!r}")
        space = {"name": self.space.name, "config": self.space.config()}
        if state["space"] != space:
            raise ConfigError(f"strategy state: saved for space {state['space']}, this strategy searches {space}")
        return state

    # -- what subclasses implement ----------------------------------------------------------
    @abstractmethod
    def _draw(self) -> tuple[GenotypeLike, dict[str, Any]]:
        """One candidate genotype and the plain-data record `_learn` will get back with its reward.

        `ask` adds the genotype's canonical hash to the record as "cell_hash".
        """

    @abstractmethod
    def _learn(self, record: dict[str, Any], reward: float) -> None:
        """Use the reward of the trial that `record` describes."""

    def _algorithm_state(self) -> dict[str, Any]:
        """What the algorithm keeps besides the shared bookkeeping (plain data or tensors)."""
        return {}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        """Restore what `_algorithm_state` returned."""

    def _load_fork_state(self, state: dict[str, Any]) -> None:
        """Take over what a parent's `_algorithm_state` says it learned (see `load_fork`); by
        default all of it."""
        self._load_algorithm_state(state)
