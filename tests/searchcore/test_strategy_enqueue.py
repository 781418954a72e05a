"""Cells given by hand (issue 18): `Strategy.enqueue` for every registered strategy.

The next ask proposes the queued cell with the next trial id; the tell works; a strategy that
`learns_from_given_cells` (evolution) learns from it as its own sample, the others record it as
an outside evaluation and learn nothing; the queue survives `state_dict` through `torch.save`.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from searchcore.errors import GenotypeError
from searchcore.spaces import MacroSpace, NasnetCellSpace, SearchSpace
from searchcore.strategies import STRATEGIES, create_strategy

SMALL_HPARAMS = {"reinforce": {"batch_size": 2}, "ppo": {"batch_size": 2},
                 "evolution": {"population_size": 4, "sample_size": 2}}
SPACES = {"nasnet-B2": lambda: NasnetCellSpace(num_blocks=2), "macro": MacroSpace}


@pytest.fixture(params=STRATEGIES.names())
def strategy_name(request) -> str:
    return request.param


@pytest.fixture(params=list(SPACES))
def space(request) -> SearchSpace:
    return SPACES[request.param]()


def _make(name: str, space: SearchSpace, **extra):
    return create_strategy(name, space, seed=3, **SMALL_HPARAMS.get(name, {}), **extra)


def _round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


def test_enqueued_cell_is_asked_next_told_and_survives_the_state(strategy_name, space):
    strategy = _make(strategy_name, space)
    first = strategy.ask()
    given = [space.sample(np.random.default_rng(seed)) for seed in (100, 101)]
    hashes = [strategy.enqueue(genotype) for genotype in given]
    assert hashes == [g.canonical_hash() for g in given] and strategy.enqueued == hashes

    restored = _make(strategy_name, space)
    restored.load_state_dict(_round_trip(strategy.state_dict()))
    assert restored.enqueued == hashes

    for each in (strategy, restored):
        proposal = each.ask()
        assert proposal.trial_id == first.trial_id + 1 and proposal.cell_hash == hashes[0]
        assert proposal.genotype.canonical_hash() == hashes[0]
        assert each.enqueued == hashes[1:]
        second = each.ask()
        assert (second.trial_id, second.cell_hash) == (first.trial_id + 2, hashes[1])
        drawn = each.ask()  # the queue is empty: the algorithm draws again
        assert drawn.trial_id == first.trial_id + 3 and each.enqueued == []
        each.tell(proposal.trial_id, 0.9)
        each.tell(second.trial_id, None)
        each.tell(first.trial_id, 0.1)
        each.tell(drawn.trial_id, 0.2)
        assert each.pending == []
    # both continue alike after the round trip
    assert strategy.ask().cell_hash == restored.ask().cell_hash
    assert _round_trip(strategy.state_dict())["enqueued"] == []


def test_outside_evaluations_are_learned_only_where_the_strategy_allows(strategy_name, space):
    strategy = _make(strategy_name, space)
    learned = []
    original = strategy._learn
    strategy._learn = lambda record, reward: (learned.append((record["cell_hash"], reward)), original(record, reward))
    genotype = space.sample(np.random.default_rng(7))
    cell_hash = strategy.enqueue(genotype)
    proposal = strategy.ask()
    strategy.tell(proposal.trial_id, 0.75)
    if type(strategy).learns_from_given_cells:
        assert learned == [(cell_hash, 0.75)]
    else:
        assert learned == []


def test_evolution_puts_a_given_cell_in_its_population():
    space = NasnetCellSpace(num_blocks=2)
    strategy = _make("evolution", space)
    assert type(strategy).learns_from_given_cells
    cell_hash = strategy.enqueue(space.sample(np.random.default_rng(1)))
    strategy.tell(strategy.ask().trial_id, 0.5)
    assert strategy.population == [(cell_hash, 0.5)]
    assert not STRATEGIES.get("reinforce").learns_from_given_cells


def test_a_cell_of_another_space_is_refused_and_nothing_is_queued(strategy_name):
    strategy = _make(strategy_name, NasnetCellSpace(num_blocks=2))
    with pytest.raises(GenotypeError, match="blocks"):
        strategy.enqueue(NasnetCellSpace(num_blocks=3).sample(np.random.default_rng(0)))
    with pytest.raises(GenotypeError):
        strategy.enqueue(MacroSpace().sample(np.random.default_rng(0)))
    with pytest.raises(GenotypeError, match="expected a genotype"):
        strategy.enqueue({"format": "cellsearch.nasnet/1"})
    assert strategy.enqueued == [] and strategy.ask().trial_id == 0


def test_with_reject_duplicates_a_given_cell_counts_as_seen(strategy_name):
    space = NasnetCellSpace(num_blocks=2)
    strategy = _make(strategy_name, space, reject_duplicates=True)
    cell_hash = strategy.enqueue(space.sample(np.random.default_rng(2)))
    strategy.ask()
    assert cell_hash in strategy.state_dict()["seen_hashes"]


def test_a_state_saved_before_enqueue_existed_loads_with_an_empty_queue(strategy_name):
    space = NasnetCellSpace(num_blocks=2)
    state = _make(strategy_name, space).state_dict()
    del state["enqueued"]
    strategy = _make(strategy_name, space)
    strategy.load_state_dict(state)
    assert strategy.enqueued == []
