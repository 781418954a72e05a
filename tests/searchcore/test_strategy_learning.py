"""What each algorithm does with rewards: the papers' settings, the updates, and that they learn.

The learning check uses a synthetic reward, the fraction of a genotype's 20 ops that are
sep_conv_3x3, in the full NASNet space (B = 5, 13 ops). Random search averages 1/13 ≈ 0.077
on it; each learning strategy must clearly beat that over its last 50 of 300 cells.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchcore.errors import ConfigError
from searchcore.spaces import NasnetCellSpace
from searchcore.spaces.nasnet import Genotype, cells_of
from searchcore.strategies import PPOConfig, ReinforceConfig, create_strategy
from searchcore.strategies.evolution import RegularizedEvolution

NUM_TRIALS = 300
TAIL = 50


def sep3_fraction(genotype: Genotype) -> float:
    ops = [op for _, cell in cells_of(genotype) for block in cell.blocks for op in block.ops]
    return sum(op == "sep_conv_3x3" for op in ops) / len(ops)


def tail_mean_reward(name: str, **hparams) -> float:
    """Mean synthetic reward of the last `TAIL` of `NUM_TRIALS` cells, told as soon as asked."""
    strategy = create_strategy(name, NasnetCellSpace(), seed=0, **hparams)
    rewards = []
    for _ in range(NUM_TRIALS):
        proposal = strategy.ask()
        rewards.append(sep3_fraction(proposal.genotype))
        strategy.tell(proposal.trial_id, rewards[-1])
    return float(np.mean(rewards[-TAIL:]))


@pytest.fixture(scope="module")
def random_tail_mean() -> float:
    mean = tail_mean_reward("random")
    assert mean == pytest.approx(1 / 13, abs=0.03)
    return mean


@pytest.mark.parametrize(
    ("name", "hparams"),
    [
        # 300 cells instead of NAS v1's 12,800 and NASNet's 20,000: the controllers get a larger
        # learning rate than the papers' 0.0006 and 0.00035, everything else at the defaults.
        ("reinforce", {"lr": 0.02}),
        ("ppo", {"lr": 0.01}),
        ("evolution", {}),  # the paper's P = 100, S = 25: 200 tournaments after the random start
    ],
)
def test_beats_random_search_on_a_synthetic_reward(name, hparams, random_tail_mean):
    assert tail_mean_reward(name, **hparams) > random_tail_mean + 0.25


def test_controller_defaults_are_the_papers():
    nas_v1 = ReinforceConfig()
    assert (nas_v1.num_layers, nas_v1.hidden_size, nas_v1.lr, nas_v1.init_range) == (2, 35, 6e-4, 0.08)
    nasnet = PPOConfig()
    assert (nasnet.num_layers, nasnet.hidden_size, nasnet.lr, nasnet.init_range) == (1, 100, 3.5e-4, 0.1)
    assert (nasnet.entropy_weight, nasnet.baseline_decay, nasnet.batch_size, nasnet.clip) == (1e-5, 0.95, 20, 0.2)


@pytest.mark.parametrize(("name", "init_range"), [("reinforce", 0.08), ("ppo", 0.1)])
def test_controller_has_one_head_per_decision_and_uniform_init(name, init_range):
    space = NasnetCellSpace()
    strategy = create_strategy(name, space)
    heads = [head.out_features for head in strategy.policy.heads]
    assert heads == [decision.size for decision in space.decisions()]
    assert len(heads) == 2 * 5 * 5  # NASNet's 2 × 5B softmaxes, B = 5
    assert heads[5:7] == [3, 3]  # block 1 may read h0, h1 and block 0's output
    weights = torch.cat([param.detach().flatten() for param in strategy.policy.parameters()]).abs()
    assert weights.max() <= init_range
    assert weights.mean() == pytest.approx(init_range / 2, rel=0.02)  # |U(−r, r)| averages r / 2


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_baseline_is_an_exponential_moving_average(name):
    strategy = create_strategy(name, NasnetCellSpace(num_blocks=2), baseline_decay=0.9, batch_size=100)
    trials = [strategy.ask().trial_id for _ in range(4)]
    assert strategy.baseline is None
    strategy.tell(trials[0], 0.5)
    assert strategy.baseline == pytest.approx(0.5)  # the first reward seeds it
    strategy.tell(trials[1], None)  # a failed trial teaches nothing
    assert strategy.baseline == pytest.approx(0.5)
    strategy.tell(trials[2], 1.0)
    assert strategy.baseline == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)
    strategy.tell(trials[3], 0.0)
    assert strategy.baseline == pytest.approx(0.9 * 0.55)


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_controller_updates_after_every_batch_of_rewards(name):
    strategy = create_strategy(name, NasnetCellSpace(num_blocks=2), batch_size=3, lr=0.01)

    def weights() -> list[torch.Tensor]:
        return [p.detach().clone() for p in strategy.policy.parameters()]

    def unchanged(before: list[torch.Tensor]) -> bool:
        return all(torch.equal(a, b) for a, b in zip(before, strategy.policy.parameters()))

    trials = [strategy.ask().trial_id for _ in range(7)]
    before = weights()
    for trial_id, reward in zip(trials[:5], (0.2, None, 0.9, None, None)):
        strategy.tell(trial_id, reward)
        assert unchanged(before)  # two rewards in, failures do not count
    strategy.tell(trials[5], 0.4)
    assert not unchanged(before)
    before = weights()
    strategy.tell(trials[6], 0.7)
    assert unchanged(before)


def test_ppo_keeps_the_log_prob_of_the_policy_that_drew_the_cell():
    strategy = create_strategy("ppo", NasnetCellSpace(num_blocks=2), batch_size=4, lr=0.01)
    late = strategy.ask()
    record = strategy.state_dict()["pending"][late.trial_id]
    actions = torch.tensor([record["actions"]])
    at_ask_time = strategy.policy.evaluate(actions)[0].item()
    assert record["log_prob"] == pytest.approx(at_ask_time, abs=1e-4)

    for reward in (0.1, 0.9, 0.3, 0.6):  # one update while `late` is still in flight
        strategy.tell(strategy.ask().trial_id, reward)
    assert strategy.policy.evaluate(actions)[0].item() != pytest.approx(at_ask_time, abs=1e-4)
    assert strategy.state_dict()["pending"][late.trial_id]["log_prob"] == record["log_prob"]


def test_evolution_defaults_are_the_papers():
    strategy = create_strategy("evolution", NasnetCellSpace())
    assert isinstance(strategy, RegularizedEvolution)
    assert (strategy.config.population_size, strategy.config.sample_size) == (100, 25)
    assert strategy.config.identity_probability == 0.05  # ours: rare copies


def test_evolution_ages_out_the_oldest_and_skips_failures():
    strategy = create_strategy("evolution", NasnetCellSpace(num_blocks=2), population_size=3, sample_size=2)
    told = []
    for step, reward in enumerate((0.5, None, 0.7, 0.1, None, 0.9, 0.3)):
        proposal = strategy.ask()
        strategy.tell(proposal.trial_id, reward)
        if reward is not None:
            told.append((proposal.cell_hash, reward))
        assert strategy.population == told[-3:], f"after tell {step}"


def tournament_children(identity_probability: float, asks: int) -> tuple[list[int], list[int]]:
    """Children of a fixed population of four (rewards 0.1, 0.2, 0.3, 0.9) in the full NASNet
    space: for each, its distance in decisions to the nearest member, and that member."""
    space = NasnetCellSpace()
    strategy = create_strategy("evolution", space, seed=1, population_size=4, sample_size=4,
                               identity_probability=identity_probability)
    members = []
    for reward in (0.1, 0.2, 0.3, 0.9):
        proposal = strategy.ask()
        strategy.tell(proposal.trial_id, reward)
        members.append(np.array(space.encode(proposal.genotype)))

    nearest, parents = [], []
    for _ in range(asks):  # no tells: the population stays fixed
        child = np.array(space.encode(strategy.ask().genotype))
        distances = [int((child != member).sum()) for member in members]
        closest, second = sorted(distances)[:2]
        assert second > 1  # the child comes from exactly one member
        nearest.append(closest)
        parents.append(distances.index(closest))
    return nearest, parents


def test_evolution_mutates_the_best_of_each_tournament():
    nearest, parents = tournament_children(identity_probability=0.0, asks=100)
    assert set(nearest) == {1}  # one mutation away from its parent
    # Four picks with replacement hold the best member with probability 1 − (3/4)^4 ≈ 0.68 and
    # are all the worst with probability (1/4)^4 ≈ 0.004.
    assert parents.count(3) > 55
    assert parents.count(0) <= 3


def test_evolution_identity_mutation_copies_the_parent():
    """Real et al.'s third mutation: with `identity_probability` the child is its parent unchanged."""
    nearest, parents = tournament_children(identity_probability=0.3, asks=200)
    assert set(nearest) == {0, 1}
    copies = [parent for distance, parent in zip(nearest, parents) if distance == 0]
    assert 35 <= len(copies) <= 85  # 60 expected; the bounds are about ±4 standard deviations
    assert copies.count(3) > len(copies) / 2  # copies come from tournaments too


@pytest.mark.parametrize(
    ("name", "hparams", "message"),
    [
        ("evolution", {"population_size": 5, "sample_size": 6}, "sample_size must be in 1..population_size"),
        ("evolution", {"population_size": 0}, r"population_size must be in 1\.\.100000"),
        ("evolution", {"identity_probability": 1.0}, r"identity_probability must be in \[0, 1\)"),
        ("evolution", {"identity_probability": -0.1}, r"identity_probability must be in \[0, 1\)"),
        ("ppo", {"clip": 0.0}, "clip must be positive"),
        ("ppo", {"epochs": 0}, r"epochs must be in 1\.\.100"),
        ("ppo", {"entropy_weight": float("nan")}, "must be a finite number, got nan"),
        ("ppo", {"hidden_size": 10**7}, r"hidden_size must be in 1\.\.4096"),
        ("reinforce", {"baseline_decay": 1.0}, r"baseline_decay must be in \[0, 1\)"),
        ("reinforce", {"lr": -1.0}, "lr must be positive"),
        ("reinforce", {"batch_size": 0}, r"batch_size must be in 1\.\.10000"),
        ("ppo", {"lr": "fast"}, "strategy 'ppo': hyperparameter 'lr' must be a finite number, got 'fast'"),
        ("ppo", {"hidden_size": 64.0}, "hyperparameter 'hidden_size' must be an integer"),
    ],
)
def test_out_of_range_hparams_raise(name, hparams, message):
    with pytest.raises(ConfigError, match=message):
        create_strategy(name, NasnetCellSpace(num_blocks=2), **hparams)


def test_integer_values_for_float_hparams_are_stored_as_floats():
    config = create_strategy("ppo", NasnetCellSpace(num_blocks=2), lr=1, baseline_decay=0).config
    assert (config.lr, config.baseline_decay) == (1.0, 0.0)
    assert isinstance(config.lr, float) and isinstance(config.baseline_decay, float)


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_controller_records_each_updates_stats_once(name):
    space = NasnetCellSpace(num_blocks=2)
    strategy = create_strategy(name, space, batch_size=2, baseline_decay=0.5, lr=0.01)
    trials = [strategy.ask().trial_id for _ in range(6)]
    for trial_id, reward in zip(trials[:4], (0.2, None, 0.6, 0.4)):
        strategy.tell(trial_id, reward)
    (first,) = strategy.take_update_stats()
    assert strategy.take_update_stats() == []  # taken once
    # rewards 0.2 then 0.6: advantages 0 and 0.4 against baselines 0.2 and 0.2; then 0.5 · 0.2 + 0.5 · 0.6
    assert (first.update, first.trials_told) == (0, 3)  # the failed trial counts as told
    assert first.mean_advantage == pytest.approx(0.2)
    assert first.baseline == pytest.approx(0.4)
    most_entropy = sum(np.log(decision.size) for decision in space.decisions())
    assert 0 < first.entropy <= most_entropy
    assert np.isfinite(first.loss)

    resumed = create_strategy(name, space, batch_size=2, baseline_decay=0.5, lr=0.01)
    resumed.load_state_dict(strategy.state_dict())  # the update count is state, the stats are not
    for trial_id, reward in zip(trials[4:], (0.9, 0.1)):
        resumed.tell(trial_id, reward)
    (second,) = resumed.take_update_stats()  # 0.4, buffered before the resume, and 0.9
    assert (second.update, second.trials_told) == (1, 5)
    assert second.to_dict()["baseline"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.9)


def test_controller_state_saved_before_update_counts_still_loads():
    strategy = create_strategy("ppo", NasnetCellSpace(num_blocks=2), batch_size=1)
    strategy.tell(strategy.ask().trial_id, 0.5)
    state = strategy.state_dict()
    del state["algorithm"]["updates"]
    later = create_strategy("ppo", NasnetCellSpace(num_blocks=2), batch_size=1)
    later.load_state_dict(state)
    later.tell(later.ask().trial_id, 0.5)
    assert [stats.update for stats in later.take_update_stats()] == [0]
