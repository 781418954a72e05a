"""The ask/tell contract, checked for every registered strategy on every test space.

The web app's control step and the CLI rely on exactly this: sampling with replacement (or
unique cells with `reject_duplicates`), many asks in flight, tells in any order, failed trials
told None, clear errors for bad tells, and a `state_dict` that survives `torch.save` /
`torch.load(weights_only=True)` and resumes the search exactly, in either mode.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from searchcore.errors import ConfigError, SearchcoreError, SpaceExhaustedError, UnknownNameError
from searchcore.spaces import SPACES, NasnetCellSpace, SearchSpace
from searchcore.strategies import (
    STRATEGIES,
    STRATEGY_CONFIGS,
    Proposal,
    Strategy,
    StrategyConfig,
    UnknownTrialError,
    create_strategy,
    register_strategy,
    validate_strategy_options,
)
from searchcore.strategies.random_search import RandomSearch

#: Small settings so a test sees controller updates and evolution's tournaments within a few dozen trials.
SMALL_HPARAMS: dict[str, dict[str, Any]] = {
    "reinforce": {"batch_size": 4},
    "ppo": {"batch_size": 4},
    "evolution": {"population_size": 8, "sample_size": 3},
}


#: Every registered space at its defaults (NASNet's B = 5, the NAS-v1 macro space, and the
#: tests' toy space that no strategy could special-case), plus a small NASNet space.
TEST_SPACES = {
    **{name: SPACES.get(name) for name in SPACES.names()},
    "nasnet-B2": lambda: NasnetCellSpace(num_blocks=2),
}


@pytest.fixture(params=STRATEGIES.names())
def strategy_name(request) -> str:
    return request.param


@pytest.fixture(params=list(TEST_SPACES))
def space(request) -> SearchSpace:
    return TEST_SPACES[request.param]()


@pytest.fixture(params=[False, True], ids=["repeats", "reject"])
def reject(request) -> bool:
    """Both ways a strategy treats a cell it proposed before: sample it again, or redraw."""
    return request.param


#: One block per cell, identity only, add only: a cell is an unordered pair of inputs drawn
#: from {0, 1}, so 3 cells and 3 × 3 genotypes, though there are 4 × 4 choice sequences.
def tiny_space() -> NasnetCellSpace:
    return NasnetCellSpace(num_blocks=1, ops=("identity",), combines=("add",))


def make(name: str, space: SearchSpace, seed: int = 0, **overrides: Any) -> Strategy:
    return create_strategy(name, space, seed=seed, **{**SMALL_HPARAMS.get(name, {}), **overrides})


def reward_of(proposal: Proposal) -> float:
    """A fixed pseudo-accuracy per cell, so two runs that ask the same cells see the same rewards."""
    return int(proposal.cell_hash[:8], 16) / 16**8


def run_async(strategy: Strategy, rounds: int, order: random.Random, in_flight: int = 3) -> list[Proposal]:
    """Keep `in_flight` asks outstanding; each round asks up to it, then tells a random two of them.

    Every fourth tell reports a failure. Returns every proposal in ask order.
    """
    asked: list[Proposal] = []
    outstanding: dict[int, Proposal] = {}
    for _ in range(rounds):
        while len(outstanding) < in_flight:
            proposal = strategy.ask()
            asked.append(proposal)
            outstanding[proposal.trial_id] = proposal
        for trial_id in order.sample(sorted(outstanding), 2):
            proposal = outstanding.pop(trial_id)
            strategy.tell(trial_id, None if trial_id % 4 == 3 else reward_of(proposal))
    return asked


def hashes(proposals: Sequence[Proposal]) -> list[str]:
    return [p.cell_hash for p in proposals]


def test_registry_holds_the_paper_strategies():
    assert {"random", "reinforce", "ppo", "evolution"} <= set(STRATEGIES.names())
    for name in STRATEGIES.names():
        assert STRATEGIES.get(name).name == name


def test_many_asks_before_any_tell_are_unique_and_numbered(strategy_name, space):
    strategy = make(strategy_name, space, reject_duplicates=True)
    proposals = [strategy.ask() for _ in range(30)]
    assert [p.trial_id for p in proposals] == list(range(30))
    assert strategy.pending == list(range(30))
    assert len(set(hashes(proposals))) == 30
    for proposal in proposals:
        assert proposal.cell_hash == proposal.genotype.canonical_hash()
        assert len(space.encode(proposal.genotype)) == len(space.decisions())


def test_without_rejection_asks_sample_with_replacement(strategy_name):
    """The papers' sampling: a tiny space repeats at once, nothing is exhausted, no hash is kept."""
    strategy = make(strategy_name, tiny_space())
    proposals = run_async(strategy, rounds=20, order=random.Random(7))
    assert [p.trial_id for p in proposals] == list(range(len(proposals)))
    assert len(set(hashes(proposals))) <= 9 < len(proposals)
    for proposal in proposals:
        assert proposal.cell_hash == proposal.genotype.canonical_hash()
    assert strategy.state_dict()["seen_hashes"] == []


def test_tells_in_any_order_with_failures(strategy_name, space, reject):
    strategy = make(strategy_name, space, reject_duplicates=reject)
    asked = run_async(strategy, rounds=15, order=random.Random(0), in_flight=6)
    if reject:
        assert len(set(hashes(asked))) == len(asked)
    assert len(strategy.pending) == 6 - 2  # the last round told two of the six in flight
    for trial_id in reversed(strategy.pending):
        strategy.tell(trial_id, None)
    assert strategy.pending == []
    assert strategy.ask().trial_id == len(asked)


def test_bad_tells_raise_and_change_nothing(strategy_name):
    strategy = make(strategy_name, NasnetCellSpace(num_blocks=2))
    told, failed, open_trial = (strategy.ask().trial_id for _ in range(3))
    strategy.tell(told, 0.5)
    strategy.tell(failed, None)
    for trial_id, why in ((told, "already told"), (failed, "already told"), (7, "never asked"), (-1, "never asked")):
        with pytest.raises(UnknownTrialError, match=f"trial {trial_id} is not pending: it was {why}") as error:
            strategy.tell(trial_id, 0.5)
        assert isinstance(error.value, (SearchcoreError, KeyError))
    for reward in (math.nan, math.inf, "0.9", True):
        with pytest.raises(ConfigError, match=f"reward of trial {open_trial}"):
            strategy.tell(open_trial, reward)
    assert strategy.pending == [open_trial]
    strategy.tell(open_trial, 1)
    assert strategy.pending == []


def assert_plain_equal(saved: Any, loaded: Any, where: str = "state") -> None:
    """Equal, and built only of tensors, plain containers, numbers, strings and None."""
    if isinstance(saved, torch.Tensor):
        assert isinstance(loaded, torch.Tensor) and torch.equal(saved, loaded), where
    elif isinstance(saved, dict):
        assert isinstance(loaded, dict) and list(saved) == list(loaded), where
        for key in saved:
            assert_plain_equal(saved[key], loaded[key], f"{where}[{key!r}]")
    elif isinstance(saved, (list, tuple)):
        assert type(loaded) is type(saved) and len(saved) == len(loaded), where
        for i, (a, b) in enumerate(zip(saved, loaded)):
            assert_plain_equal(a, b, f"{where}[{i}]")
    else:
        assert saved is None or type(saved) in (int, float, str, bool), f"{where}: {type(saved).__name__}"
        assert saved == loaded and type(saved) is type(loaded), where


def test_state_dict_round_trips_through_torch_save(strategy_name, space, tmp_path):
    strategy = make(strategy_name, space)
    run_async(strategy, rounds=10, order=random.Random(1))
    assert strategy.pending
    state = strategy.state_dict()
    torch.save(state, tmp_path / "strategy.pt")
    assert_plain_equal(state, torch.load(tmp_path / "strategy.pt", weights_only=True))


def test_resume_makes_the_same_future_asks(strategy_name, space, reject, tmp_path):
    original = make(strategy_name, space, seed=3, reject_duplicates=reject)
    run_async(original, rounds=10, order=random.Random(2))
    torch.save(original.state_dict(), tmp_path / "strategy.pt")
    restored = make(strategy_name, space, seed=99, reject_duplicates=reject)  # the saved state, not the seed, decides
    restored.load_state_dict(torch.load(tmp_path / "strategy.pt", weights_only=True))
    assert restored.pending == original.pending != []

    futures = []
    for strategy in (original, restored):
        for trial_id in strategy.pending:  # rewards for the asks that were in flight at the snapshot
            strategy.tell(trial_id, (trial_id % 10) / 10)
        futures.append(run_async(strategy, rounds=5, order=random.Random(3)))
    assert [(p.trial_id, p.cell_hash) for p in futures[0]] == [(p.trial_id, p.cell_hash) for p in futures[1]]
    assert len(futures[0]) >= 10
    assert_plain_equal(original.state_dict(), restored.state_dict())


def test_resume_in_a_space_that_repeats_makes_the_same_asks(strategy_name, reject, tmp_path):
    """Where repeats are the rule (or, with rejection, the space runs out), resuming changes nothing."""
    original = make(strategy_name, tiny_space(), seed=4, reject_duplicates=reject, max_attempts=300)
    first = [original.ask() for _ in range(4)]
    for proposal in first[:3]:
        original.tell(proposal.trial_id, reward_of(proposal))
    torch.save(original.state_dict(), tmp_path / "strategy.pt")
    restored = make(strategy_name, tiny_space(), seed=5, reject_duplicates=reject, max_attempts=300)
    restored.load_state_dict(torch.load(tmp_path / "strategy.pt", weights_only=True))

    futures = []
    for strategy in (original, restored):
        asked = []
        for _ in range(5 if reject else 12):  # with rejection, 9 genotypes: 4 asked, 5 left
            proposal = strategy.ask()
            asked.append((proposal.trial_id, proposal.cell_hash))
            strategy.tell(proposal.trial_id, reward_of(proposal))
        futures.append(asked)
    assert futures[0] == futures[1]
    every = [p.cell_hash for p in first] + [h for _, h in futures[0]]
    if reject:
        assert len(set(every)) == len(every) == 9
    else:
        assert len(set(every)) < len(every)
    assert_plain_equal(original.state_dict(), restored.state_dict())


def test_snapshot_is_a_copy(strategy_name):
    strategy = make(strategy_name, NasnetCellSpace(num_blocks=2))
    run_async(strategy, rounds=6, order=random.Random(4))
    state = strategy.state_dict()
    run_async(strategy, rounds=6, order=random.Random(5))
    later = make(strategy_name, NasnetCellSpace(num_blocks=2))
    later.load_state_dict(state)
    assert later.state_dict()["next_trial_id"] == state["next_trial_id"] < strategy.state_dict()["next_trial_id"]
    assert_plain_equal(state, later.state_dict())


def test_load_rejects_another_setup(strategy_name):
    space = NasnetCellSpace(num_blocks=2)
    state = make(strategy_name, space).state_dict()
    with pytest.raises(ConfigError, match="hyperparameter 'max_attempts' was 1000, this strategy has 50"):
        make(strategy_name, space, max_attempts=50).load_state_dict(state)
    with pytest.raises(ConfigError, match="hyperparameter 'reject_duplicates' was False, this strategy has True"):
        make(strategy_name, space, reject_duplicates=True).load_state_dict(state)
    with pytest.raises(ConfigError, match="saved for space"):
        make(strategy_name, NasnetCellSpace(num_blocks=3)).load_state_dict(state)
    other = next(name for name in STRATEGIES.names() if name != strategy_name)
    with pytest.raises(ConfigError, match=f"saved by {other!r}"):
        make(strategy_name, space).load_state_dict(make(other, space).state_dict())


def test_seeding(strategy_name, space):
    def trace(seed: int) -> list[str]:
        return hashes(run_async(make(strategy_name, space, seed=seed), rounds=8, order=random.Random(6)))

    assert trace(seed=1) == trace(seed=1)
    assert make(strategy_name, space, seed=1).ask().cell_hash != make(strategy_name, space, seed=2).ask().cell_hash


def test_a_state_saved_before_reject_duplicates_existed_resumes_with_rejection(strategy_name):
    """Format 1 states always rejected repeats (and evolution made no identity mutation): they
    load into a strategy set up that way, and only into one."""
    space = NasnetCellSpace(num_blocks=2)
    config_class = STRATEGIES.get(strategy_name).config_class
    legacy = config_class.LEGACY_HPARAMS
    original = make(strategy_name, space, **legacy)
    run_async(original, rounds=4, order=random.Random(8))
    state = original.state_dict()
    state["format"] = "cellsearch.strategy/1"
    state["hparams"] = {k: v for k, v in state["hparams"].items() if k not in legacy}

    with pytest.raises(ConfigError, match=r"hyperparameter '(reject_duplicates|identity_probability)' was "):
        make(strategy_name, space).load_state_dict(state)
    restored = make(strategy_name, space, **legacy)
    restored.load_state_dict(state)
    assert restored.state_dict()["format"] == "cellsearch.strategy/2"
    assert [original.ask().cell_hash for _ in range(5)] == [restored.ask().cell_hash for _ in range(5)]


def test_exhausting_a_tiny_space_raises(strategy_name):
    space = tiny_space()
    every_cell = {
        space.decode(actions).canonical_hash()
        for actions in itertools.product(*(range(d.size) for d in space.decisions()))
    }
    assert len(every_cell) == 9
    # Under a near-uniform policy the last new genotype has probability >= 1/16 per draw, so
    # 300 draws miss it with probability below 1e-8.
    strategy = make(strategy_name, space, reject_duplicates=True, max_attempts=300)
    proposals = [strategy.ask() for _ in range(len(every_cell))]
    assert set(hashes(proposals)) == every_cell
    with pytest.raises(SpaceExhaustedError, match=f"strategy {strategy_name!r} drew no new cell in 300 attempts"):
        strategy.ask()


def test_unknown_names_and_bad_hparams_raise(strategy_name):
    space = NasnetCellSpace(num_blocks=2)
    with pytest.raises(UnknownNameError, match="unknown strategy 'grid'; known: " + ", ".join(STRATEGIES.names())):
        create_strategy("grid", space)
    with pytest.raises(ConfigError, match=f"strategy {strategy_name!r} has no hyperparameter 'learning_rate'"):
        create_strategy(strategy_name, space, learning_rate=0.1)
    with pytest.raises(ConfigError, match=r"max_attempts must be in 1\.\.1000000"):
        create_strategy(strategy_name, space, max_attempts=0)
    for value in ("100", 100.0, True):
        with pytest.raises(ConfigError, match=f"hyperparameter 'max_attempts' must be an integer, got {value!r}"):
            create_strategy(strategy_name, space, max_attempts=value)
    for value in (1, 0, "true", None):
        with pytest.raises(ConfigError, match=f"hyperparameter 'reject_duplicates' must be true or false, got {value!r}"):
            create_strategy(strategy_name, space, reject_duplicates=value)
    assert create_strategy(strategy_name, space, reject_duplicates=True).config.reject_duplicates is True


class FirstChoiceSearch(RandomSearch):
    """Random search under another name: enough to show what registering a strategy takes."""

    name = "first-choice"


def test_a_new_strategy_is_one_register_strategy_call():
    register_strategy("first-choice", f"{__name__}:FirstChoiceSearch", StrategyConfig)
    try:
        assert validate_strategy_options("first-choice", {"max_attempts": 5}) == StrategyConfig(max_attempts=5)
        strategy = create_strategy("first-choice", NasnetCellSpace(num_blocks=2), reject_duplicates=True)
        assert isinstance(strategy, FirstChoiceSearch) and strategy.ask().trial_id == 0
    finally:
        STRATEGIES.unregister("first-choice")
        del STRATEGY_CONFIGS["first-choice"]


def test_every_strategy_has_a_torch_free_config_class():
    assert sorted(STRATEGY_CONFIGS) == STRATEGIES.names()
    for name in STRATEGIES.names():
        assert STRATEGIES.get(name).config_class is STRATEGY_CONFIGS[name]


def test_listing_and_validating_strategies_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from searchcore.strategies import STRATEGIES, validate_strategy_options; "
            "STRATEGIES.names(); validate_strategy_options('ppo', {'batch_size': 4}); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
