"""Properties of the genotype format and the NASNet cell space, checked on random genotypes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchcore.errors import GenotypeError
from searchcore.known import get_known
from searchcore.opnames import ALL_OPS, COMBINE_OPS, NASNET_OPS
from searchcore.spaces import parse_genotype
from searchcore.spaces.nasnet import CANONICAL_HASH_VERSION, NUM_CELL_INPUTS, Block, Cell, Genotype, NasnetCellSpace

#: Canonicalising tries every topological order of up to 6 blocks, so examples are not instant.
examples = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- strategies ------------------------------------------------------------------------------

@st.composite
def blocks(draw, min_blocks: int = 1, max_blocks: int = 6, combines=COMBINE_OPS) -> tuple[Block, ...]:
    count = draw(st.integers(min_blocks, max_blocks))
    result = []
    for k in range(count):
        states = st.integers(0, NUM_CELL_INPUTS + k - 1)
        result.append(Block(
            inputs=(draw(states), draw(states)),
            ops=(draw(st.sampled_from(ALL_OPS)), draw(st.sampled_from(ALL_OPS))),
            combine=draw(st.sampled_from(combines)),
        ))
    return tuple(result)


@st.composite
def cells(draw, combines=COMBINE_OPS) -> Cell:
    """A valid cell: implicit concat, or an explicit one in any order.

    An explicit concat keeps every block alive exactly when it holds every block no other
    block reads, so it is those plus any other states.
    """
    cell_blocks = draw(blocks(combines=combines))
    if not draw(st.booleans()):
        return Cell(blocks=cell_blocks)
    unused = set(Cell(blocks=cell_blocks).output_states())
    extra = draw(st.sets(st.integers(0, NUM_CELL_INPUTS + len(cell_blocks) - 1)))
    return Cell(blocks=cell_blocks, concat=tuple(draw(st.permutations(sorted(unused | extra)))))


genotypes = st.builds(Genotype, normal=cells(), reduction=cells())
add_only_genotypes = st.builds(Genotype, normal=cells(combines=("add",)), reduction=cells(combines=("add",)))


def with_block(genotype: Genotype, which: str, k: int, block: Block) -> Genotype:
    """`genotype` with block k of its `which` cell replaced."""
    cell = getattr(genotype, which)
    changed = Cell(blocks=cell.blocks[:k] + (block,) + cell.blocks[k + 1:], concat=cell.concat)
    other = "reduction" if which == "normal" else "normal"
    return Genotype(**{which: changed, other: getattr(genotype, other)})


def relabelled(cell: Cell, order: list[int]) -> Cell:
    """The same graph with block `order[j]` moved to position j (a topological order)."""
    new_state = {i: i for i in range(NUM_CELL_INPUTS)}
    new_state.update({NUM_CELL_INPUTS + old: NUM_CELL_INPUTS + new for new, old in enumerate(order)})
    moved = tuple(
        Block(inputs=tuple(new_state[i] for i in cell.blocks[old].inputs), ops=cell.blocks[old].ops,
              combine=cell.blocks[old].combine)
        for old in order
    )
    concat = None if cell.concat is None else tuple(new_state[i] for i in cell.concat)
    return Cell(blocks=moved, concat=concat)


@st.composite
def topological_orders(draw, cell: Cell) -> list[int]:
    """A random order of the blocks in which every block follows the blocks it reads."""
    order: list[int] = []
    while len(order) < len(cell.blocks):
        ready = [
            k for k, block in enumerate(cell.blocks)
            if k not in order and all(i < NUM_CELL_INPUTS or i - NUM_CELL_INPUTS in order for i in block.inputs)
        ]
        order.append(draw(st.sampled_from(ready)))
    return order


# -- JSON --------------------------------------------------------------------------------------

@examples
@given(genotypes)
def test_json_round_trip(genotype):
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert parse_genotype(genotype.to_json(indent=2)) == genotype


@examples
@given(genotypes)
def test_json_names_its_format_and_spells_out_only_explicit_concats(genotype):
    data = json.loads(genotype.to_json())
    assert data["format"] == "cellsearch.nasnet/1"
    for name in ("normal", "reduction"):
        cell = getattr(genotype, name)
        assert (f"{name}_concat" in data) == (cell.concat is not None)
        assert len(data[name]) == len(cell.blocks)


def draw_block(data, genotype) -> tuple[str, int, Block]:
    """A random block of a random cell: (cell name, block index, block)."""
    which = data.draw(st.sampled_from(["normal", "reduction"]))
    blocks = getattr(genotype, which).blocks
    k = data.draw(st.integers(0, len(blocks) - 1))
    return which, k, blocks[k]


# -- canonical hash: what counts as the same cell ----------------------------------------------

@examples
@given(genotypes, st.data(), st.sampled_from(COMBINE_OPS))
def test_hash_ignores_the_order_of_a_blocks_branches(genotype, data, combine):
    # Addition commutes; a concat is followed by a 1×1 projection, so swapping its branches
    # only permutes the projection's weights (hash version 2).
    which, k, block = draw_block(data, genotype)
    before = with_block(genotype, which, k, Block(block.inputs, block.ops, combine))
    after = with_block(genotype, which, k, Block(block.inputs[::-1], block.ops[::-1], combine))
    assert before.canonical_hash() == after.canonical_hash()


@examples
@given(genotypes, st.data())
def test_hash_ignores_how_blocks_are_numbered(genotype, data):
    renumbered = Genotype(
        normal=relabelled(genotype.normal, data.draw(topological_orders(genotype.normal))),
        reduction=relabelled(genotype.reduction, data.draw(topological_orders(genotype.reduction))),
    )
    assert renumbered.canonical_hash() == genotype.canonical_hash()


@examples
@given(genotypes)
def test_hash_ignores_spelling_out_the_implicit_concat(genotype):
    explicit = Genotype(
        normal=Cell(blocks=genotype.normal.blocks, concat=genotype.normal.output_states()[::-1]),
        reduction=Cell(blocks=genotype.reduction.blocks, concat=genotype.reduction.output_states()),
    )
    assert explicit.canonical_hash() == genotype.canonical_hash()


@examples
@given(genotypes)
def test_canonical_is_idempotent(genotype):
    canonical = genotype.canonical()
    assert canonical.canonical() == canonical
    assert canonical.canonical_hash() == genotype.canonical_hash()


@examples
@given(genotypes, st.data())
def test_changing_one_op_changes_the_hash(genotype, data):
    # Every block of a valid cell reaches the output, and a renumbering keeps the multiset of
    # ops, so a different op is always a different network.
    which, k, block = draw_block(data, genotype)
    j = data.draw(st.integers(0, 1))
    new_op = data.draw(st.sampled_from([op for op in ALL_OPS if op != block.ops[j]]))
    ops = tuple(new_op if i == j else op for i, op in enumerate(block.ops))
    changed = with_block(genotype, which, k, Block(block.inputs, ops, block.combine))
    assert changed.canonical_hash() != genotype.canonical_hash()


@examples
@given(genotypes, st.data())
def test_changing_a_blocks_combine_changes_the_hash(genotype, data):
    # A renumbering keeps the multiset of (combine, branches) blocks, so add against concat
    # is always a different network.
    which, k, block = draw_block(data, genotype)
    added = with_block(genotype, which, k, Block(block.inputs, block.ops, "add"))
    concatenated = with_block(genotype, which, k, Block(block.inputs, block.ops, "concat"))
    assert added.canonical_hash() != concatenated.canonical_hash()


def test_concat_branches_in_either_order_give_one_canonical_cell():
    """The case hash version 1 told apart: a concat block whose branches differ, spelled both ways."""
    first = Cell(blocks=(Block((0, 1), ("sep_conv_3x3", "max_pool_3x3"), "concat"),
                         Block((2, 0), ("identity", "conv_1x1"), "concat")))
    swapped = Cell(blocks=(Block((1, 0), ("max_pool_3x3", "sep_conv_3x3"), "concat"),
                           Block((0, 2), ("conv_1x1", "identity"), "concat")))
    assert first.canonical() == swapped.canonical()
    assert [b.inputs for b in first.canonical().blocks] == [(0, 1), (0, 2)]
    assert CANONICAL_HASH_VERSION == 2


def test_hash_is_a_sha256_hex_digest_of_the_canonical_json():
    digest = get_known("nasnet-a").canonical_hash()
    assert len(digest) == 64 and int(digest, 16) >= 0


# -- DARTS strings ---------------------------------------------------------------------------

@examples
@given(add_only_genotypes)
def test_darts_string_round_trip_keeps_the_hash(genotype):
    assert Genotype.from_darts(genotype.to_darts()).canonical_hash() == genotype.canonical_hash()


def test_darts_string_refuses_concat_blocks():
    cell = Cell(blocks=(Block((0, 1), ("sep_conv_3x3", "identity"), "concat"),))
    with pytest.raises(GenotypeError, match="normal cell: DARTS genotypes only add"):
        Genotype(normal=cell, reduction=cell).to_darts()


def test_darts_range_concat_parses():
    text = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=range(2, 3), "
            "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=range(2, 3))")
    genotype = Genotype.from_darts(text)
    assert genotype.normal.concat == (2,)
    assert genotype.reduction.blocks == (Block((0, 1), ("max_pool_3x3", "max_pool_3x3")),)


def test_darts_string_must_name_its_fields():
    with pytest.raises(GenotypeError, match=r"DARTS genotype: name every field \(normal=..., reduce=...\), without \*\*"):
        Genotype.from_darts("Genotype(**{'normal': [], 'reduce': []})")


# -- errors name the cell, block and field at fault ------------------------------------------

def _base() -> dict:
    return get_known("enas").to_dict()


def _set(path, value):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _drop(path):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_set(["normal", 2, "inputs"], [0, 7]),
                     ["normal cell", "block 2", "inputs[1] = 7", "out of range", "0..3"], id="input-out-of-range"),
        pytest.param(_set(["reduction", 0, "inputs"], [-1, 0]),
                     ["reduction cell", "block 0", "inputs[0] = -1"], id="negative-input"),
        pytest.param(_set(["normal", 0, "inputs"], [0.0, 1]),
                     ["normal cell", "block 0", "inputs[0]", "integer"], id="float-input"),
        pytest.param(_set(["normal", 1, "ops"], ["sep_conv_3x3", "sep_conv_9x9"]),
                     ["normal cell", "block 1", "ops[1] = 'sep_conv_9x9'", "not a known op"], id="unknown-op"),
        pytest.param(_set(["reduction", 0, "combine"], "mul"),
                     ["reduction cell", "block 0", "combine = 'mul'", "add, concat"], id="bad-combine"),
        pytest.param(_drop(["reduction", 3, "ops"]),
                     ["reduction cell", "block 3", "missing field 'ops'"], id="missing-ops"),
        pytest.param(_drop(["normal", 4, "inputs"]),
                     ["normal cell", "block 4", "missing field 'inputs'"], id="missing-inputs"),
        pytest.param(_set(["normal", 0, "inputs"], [0]),
                     ["normal cell", "block 0", "inputs", "2"], id="one-input"),
        pytest.param(_set(["normal", 0, "weights"], [1, 1]),
                     ["normal cell", "block 0", "unknown field 'weights'"], id="unknown-block-field"),
        pytest.param(_drop(["reduction"]), ["reduction cell", "list of blocks"], id="missing-cell"),
        pytest.param(_set(["normal"], []), ["normal cell", "has 0 blocks; a cell has 1..8"], id="empty-cell"),
        pytest.param(_set(["normal_concat"], [2, 3, 4, 5]),
                     ["normal cell", "block 4", "dead"], id="dead-block-with-explicit-concat"),
        pytest.param(_set(["reduction_concat"], [2, 2, 4, 5, 6]),
                     ["reduction cell", "concat", "repeats"], id="repeated-concat"),
        pytest.param(_set(["reduction_concat"], [2, 4, 5, 6, 7]),
                     ["reduction cell", "concat", "7", "out of range"], id="concat-out-of-range"),
        pytest.param(_set(["format"], "cellsearch.nasnet/2"),
                     ["format version 'cellsearch.nasnet/2'", "cellsearch.nasnet/1"], id="wrong-version"),
        pytest.param(_set(["format"], "darts"), ["format", "'darts'"], id="wrong-format"),
        pytest.param(_set(["normal_weights"], 1), ["unknown field", "normal_weights"], id="unknown-field"),
    ],
)
def test_errors_name_the_cell_block_and_field(mutate, expected):
    data = _base()
    mutate(data)
    with pytest.raises(GenotypeError) as raised:
        Genotype.from_json(json.dumps(data))
    message = str(raised.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_not_json_is_a_genotype_error():
    with pytest.raises(GenotypeError, match="genotype: not valid JSON"):
        Genotype.from_json('{"format": ')


def test_a_json_array_is_not_a_genotype():
    with pytest.raises(GenotypeError, match="must be a JSON object"):
        parse_genotype("[]")


def test_constructing_a_bad_genotype_in_code_fails_the_same_way():
    bad = Cell(blocks=(Block((0, 2), ("identity", "identity")),))
    with pytest.raises(GenotypeError, match=r"reduction cell, block 0: inputs\[1\] = 2 is out of range"):
        Genotype(normal=Cell(blocks=(Block((0, 1), ("identity", "identity")),)), reduction=bad)


# -- the NASNet cell space -------------------------------------------------------------------

@pytest.mark.parametrize("num_blocks", [1, 2, 5])
def test_space_has_2x5B_decisions(num_blocks):
    # "we simply make the controller have 2 × 5B predictions in total" (§2): 50 for the paper's B = 5.
    space = NasnetCellSpace(num_blocks=num_blocks)
    assert len(space.decisions()) == 2 * 5 * num_blocks
    block = space.decisions()[5 * (num_blocks - 1): 5 * num_blocks]
    assert [d.name for d in block] == [f"normal.{num_blocks - 1}.{step}"
                                       for step in ("input_a", "input_b", "op_a", "op_b", "combine")]
    assert block[0].choices == tuple(range(num_blocks + 1))
    assert block[2].choices == NASNET_OPS


@st.composite
def space_and_actions(draw):
    space = NasnetCellSpace(num_blocks=draw(st.integers(1, 5)))
    return space, [draw(st.integers(0, d.size - 1)) for d in space.decisions()]


@examples
@given(space_and_actions())
def test_space_encode_inverts_decode(space_actions):
    space, actions = space_actions
    genotype = space.decode(actions)
    assert space.encode(genotype) == actions
    assert space.genotype_from_dict(json.loads(genotype.to_json())) == genotype


def mutation_kind(space: NasnetCellSpace, parent: list[int], child: Genotype) -> str:
    """Which decision the one mutation changed: "hidden_state", "op" or "combine"."""
    changed = [i for i, (a, b) in enumerate(zip(parent, space.encode(child))) if a != b]
    assert len(changed) == 1
    step = space.decisions()[changed[0]].name.rsplit(".", 1)[1]
    return {"input_a": "hidden_state", "input_b": "hidden_state", "op_a": "op", "op_b": "op"}.get(step, step)


@examples
@given(space_and_actions(), st.integers(0, 2**32 - 1))
def test_space_mutation_changes_exactly_one_decision(space_actions, seed):
    space, actions = space_actions
    child = space.mutate(space.decode(actions), np.random.default_rng(seed))
    assert mutation_kind(space, actions, child) in {"hidden_state", "op", "combine"}
    assert space.genotype_from_dict(json.loads(child.to_json())) == child


@pytest.mark.parametrize(("combines", "kinds"), [
    (("add", "concat"), {"hidden_state", "op", "combine"}),
    (("add",), {"hidden_state", "op"}),  # the AmoebaNet space: Real et al.'s two mutations only
    (("concat",), {"hidden_state", "op"}),
])
def test_space_mutations_of_each_kind_happen_and_combine_only_when_there_is_a_choice(combines, kinds):
    space = NasnetCellSpace(combines=combines)
    rng = np.random.default_rng(0)
    seen = {kind: 0 for kind in ("hidden_state", "op", "combine")}
    for _ in range(300):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        seen[mutation_kind(space, space.encode(parent), child)] += 1
        assert child.canonical_hash() != parent.canonical_hash()
        assert space.genotype_from_dict(child.to_dict()) == child
    assert {kind for kind, count in seen.items() if count} == kinds
    # One of the block's decisions, uniformly: two hidden states, two ops, and the combine.
    shares = {"hidden_state": 2, "op": 2, "combine": 1}
    total = sum(shares[kind] for kind in kinds)
    for kind in kinds:
        assert seen[kind] > 0.6 * 300 * shares[kind] / total


@pytest.mark.parametrize(
    ("space", "genotype", "expected"),
    [
        pytest.param(NasnetCellSpace(), get_known("darts-v2"), "normal cell: has 4 blocks, this space has 5",
                     id="block-count"),
        pytest.param(NasnetCellSpace(), get_known("nasnet-a"), "normal cell, concat", id="explicit-concat"),
        pytest.param(NasnetCellSpace(), get_known("enas"), "normal cell, block 1: ops[0] = 'skip_connect'",
                     id="op-outside-space"),
        pytest.param(NasnetCellSpace(num_blocks=1, combines=("add",)),
                     Genotype(normal=Cell((Block((0, 1), ("identity", "identity"), "concat"),)),
                              reduction=Cell((Block((0, 1), ("identity", "identity")),))),
                     "normal cell, block 0: combine 'concat'", id="combine-outside-space"),
    ],
)
def test_space_rejects_genotypes_that_do_not_fit(space, genotype, expected):
    with pytest.raises(GenotypeError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        space.genotype_from_dict(genotype.to_dict())
    with pytest.raises(GenotypeError):
        space.encode(genotype)


def test_space_with_darts_ops_accepts_enas():
    space = NasnetCellSpace(ops=("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip_connect"),
                            combines=("add",))
    enas = get_known("enas")
    assert space.decode(space.encode(enas)) == enas
