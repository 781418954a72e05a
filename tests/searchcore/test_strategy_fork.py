"""Forking a strategy (issue 18): `Strategy.load_fork` for every registered strategy.

A fork keeps what its parent learned (a controller's policy and baseline) and none of its
trials: ids count from 0, nothing pending or queued, its own random stream. Evolution restarts
from the cells given to the fork. A fork that would change the policy's shape, another
strategy's state or another space's is refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchcore.errors import ConfigError
from searchcore.spaces import NasnetCellSpace
from searchcore.strategies import STRATEGIES, create_strategy
from tests.searchcore.test_strategy_enqueue import SMALL_HPARAMS, _round_trip


@pytest.fixture(params=STRATEGIES.names())
def strategy_name(request) -> str:
    return request.param


def _grown(name: str, space, *, trials: int = 6, seed: int = 3):
    """A strategy after `trials` asks told rewards that favour cells with more 'identity' ops,
    with one more asked and left pending."""
    strategy = create_strategy(name, space, seed=seed, **SMALL_HPARAMS.get(name, {}))
    for _ in range(trials):
        proposal = strategy.ask()
        strategy.tell(proposal.trial_id, float(proposal.genotype.to_json().count("identity")))
    strategy.ask()
    return strategy


def test_a_fork_keeps_what_was_learned_and_none_of_the_trials(strategy_name):
    space = NasnetCellSpace(num_blocks=2)
    parent = _grown(strategy_name, space)
    given = space.sample(np.random.default_rng(99))
    parent.enqueue(given)
    fork = create_strategy(strategy_name, space, seed=11, **SMALL_HPARAMS.get(strategy_name, {}))
    fork.load_fork(_round_trip(parent.state_dict()))

    assert fork.pending == [] and fork.enqueued == []
    first = fork.ask()
    assert first.trial_id == 0
    if hasattr(parent, "policy"):
        for mine, theirs in zip(fork.policy.parameters(), parent.policy.parameters(), strict=True):
            assert torch.equal(mine, theirs)
        assert fork.baseline == parent.baseline is not None
    if strategy_name == "evolution":
        assert fork.population == [] and len(parent.population) == SMALL_HPARAMS["evolution"]["population_size"]
    # parent and fork draw from different streams
    assert [parent.ask().cell_hash for _ in range(3)] != [first.cell_hash] + [fork.ask().cell_hash for _ in range(2)]


def test_an_evolution_fork_grows_from_the_cells_it_is_given():
    space = NasnetCellSpace(num_blocks=2)
    parent = _grown("evolution", space, trials=8)
    chosen = space.sample(np.random.default_rng(5))
    fork = create_strategy("evolution", space, seed=1, population_size=1, sample_size=1, identity_probability=0.0)
    fork.load_fork(parent.state_dict())
    fork.enqueue(chosen)
    proposal = fork.ask()
    assert proposal.cell_hash == chosen.canonical_hash()
    fork.tell(proposal.trial_id, 0.9)
    assert fork.population == [(chosen.canonical_hash(), 0.9)]
    child = fork.ask()
    differing = sum(a != b for a, b in zip(space.encode(child.genotype), space.encode(chosen), strict=True))
    assert differing == 1  # one mutation of the chosen cell, not a random draw


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_a_controller_fork_takes_its_own_learning_rate_but_not_another_shape(name):
    space = NasnetCellSpace(num_blocks=2)
    state = _grown(name, space).state_dict()
    fork = create_strategy(name, space, batch_size=2, lr=1e-2)
    fork.load_fork(state)
    assert {group["lr"] for group in fork.optimizer.param_groups} == {1e-2}

    wider = create_strategy(name, space, batch_size=2, hidden_size=8)
    with pytest.raises(ConfigError, match=r"cannot fork: hidden_size must stay \d+ \(the parent's\), got 8"):
        wider.load_fork(state)


def test_a_fork_of_another_strategy_or_space_is_refused():
    space = NasnetCellSpace(num_blocks=2)
    state = _grown("random", space).state_dict()
    with pytest.raises(ConfigError, match="saved by 'random', cannot load into 'evolution'"):
        create_strategy("evolution", space).load_fork(state)
    with pytest.raises(ConfigError, match="saved for space"):
        create_strategy("random", NasnetCellSpace(num_blocks=3)).load_fork(state)
