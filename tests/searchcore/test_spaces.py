"""Every registered search space meets the contract the strategies rely on."""

import numpy as np
import pytest

from searchcore.errors import UnknownNameError
from searchcore.genotype import parse_genotype
from searchcore.spaces import SPACES, create_space


@pytest.fixture(params=SPACES.names())
def space(request):
    return create_space(request.param)


def test_decode_inverts_encode(space):
    rng = np.random.default_rng(0)
    for _ in range(20):
        genotype = space.sample(rng)
        actions = space.encode(genotype)
        assert len(actions) == len(space.decisions())
        assert all(0 <= a < d.size for a, d in zip(actions, space.decisions()))
        assert space.decode(actions) == genotype


def test_json_round_trip_goes_through_the_format_registry(space):
    genotype = space.sample(np.random.default_rng(1))
    assert parse_genotype(genotype.to_json()) == genotype
    assert space.genotype_from_dict(genotype.to_dict()) == genotype


def test_mutation_changes_exactly_one_decision(space):
    rng = np.random.default_rng(2)
    for _ in range(20):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        changed = [a != b for a, b in zip(space.encode(parent), space.encode(child))]
        assert sum(changed) == 1


def test_sampling_is_seeded_and_covers_every_choice(space):
    def hashes(seed):
        rng = np.random.default_rng(seed)
        return [space.sample(rng).canonical_hash() for _ in range(5)]

    assert hashes(0) == hashes(0) and hashes(0) != hashes(1)
    rng = np.random.default_rng(3)
    seen = [set() for _ in space.decisions()]
    for _ in range(400):
        for i, a in enumerate(space.encode(space.sample(rng))):
            seen[i].add(a)
    assert all(len(s) == d.size for s, d in zip(seen, space.decisions()))


def test_config_rebuilds_an_equal_space(space):
    again = create_space(space.name, **space.config())
    assert [d.name for d in again.decisions()] == [d.name for d in space.decisions()]


def test_nasnet_space_has_the_papers_2x5B_decisions():
    space = create_space("nasnet")
    assert len(space.decisions()) == 2 * 5 * 5
    assert len(space.ops) == 13  # §2: "the 13 operations"


def test_unknown_space_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown search space 'cells'; known: .*nasnet"):
        create_space("cells")


@pytest.mark.parametrize(("name", "options", "message"), [
    ("nasnet", {"num_blocks": 9}, r"num_blocks must be a whole number in 1\.\.8"),
    ("nasnet", {"ops": "conv_1x1"}, "ops must be a non-empty list"),
    ("nasnet", {"combines": ["add", "add"]}, "combines repeats a name"),
    ("macro", {"num_layers": 10**9}, r"num_layers must be a whole number in 1\.\.50"),
    ("macro", {"num_filters": [24, 10**6]}, r"num_filters must hold integers in 1\.\.2048"),
])
def test_space_options_are_bounded(name, options, message):
    from searchcore.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        create_space(name, **options)
