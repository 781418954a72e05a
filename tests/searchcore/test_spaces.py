"""Every registered search space, and its genotypes, meet the contracts the rest relies on.

The registries decide what is checked: the toy space that this folder's conftest registers
is covered like the real ones.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from searchcore.errors import GenotypeError, UnknownNameError
from searchcore.models import NetworkConfig, build_model
from searchcore.spaces import GENOTYPE_FORMATS, SPACES, create_space, parse_genotype

#: Small enough that every space's default network builds and runs in a moment.
TINY = NetworkConfig(num_cells=1, base_filters=2, num_classes=3, in_channels=3)


@pytest.fixture(params=SPACES.names())
def space(request):
    return create_space(request.param)


def test_genotypes_meet_the_genotype_contract(space):
    rng = np.random.default_rng(4)
    for _ in range(10):
        genotype = space.sample(rng)
        assert genotype.format in GENOTYPE_FORMATS
        assert genotype.to_dict()["format"] == genotype.format
        canonical = genotype.canonical()
        assert canonical.canonical() == canonical
        assert canonical.canonical_hash() == genotype.canonical_hash()
        assert len(genotype.canonical_hash()) == 64


def test_genotypes_build_a_network_that_runs(space):
    genotype = space.sample(np.random.default_rng(5))
    model = build_model(genotype, TINY).eval()
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, 16, 16))
    assert logits.shape == (2, TINY.num_classes)


@pytest.mark.parametrize("fmt", GENOTYPE_FORMATS.names())
def test_another_version_of_a_format_is_named_as_unsupported(fmt):
    family = fmt.rsplit("/", 1)[0]
    with pytest.raises(GenotypeError, match=f"format version '{family}/99' is not supported; this reader knows '{fmt}'"):
        parse_genotype({"format": f"{family}/99"})


def test_an_unknown_format_lists_every_registered_one():
    with pytest.raises(GenotypeError, match="format 'darts' is not one of " + ", ".join(GENOTYPE_FORMATS.names())):
        parse_genotype({"format": "darts"})
    with pytest.raises(GenotypeError, match="format must be a string"):
        parse_genotype({"normal": []})


def test_build_model_refuses_what_no_format_registered():
    with pytest.raises(GenotypeError, match="cannot build a dict: it is not a genotype of a registered format"):
        build_model({"format": "cellsearch.nasnet/1"}, TINY)


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


def test_spaces_and_strategies_import_no_network_code():
    """The web process loads spaces and strategies; builders, layers and training stay out."""
    code = ("import sys, searchcore.spaces, searchcore.strategies; "
            "loaded = [m for m in sys.modules if m.split('.')[:2] in "
            "(['searchcore', 'models'], ['searchcore', 'layers'], ['searchcore', 'ops'], ['searchcore', 'train'])]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)
