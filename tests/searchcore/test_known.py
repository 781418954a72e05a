"""Published cells: each checked against its source, written in the source's own form.

The source data below is transcribed from the reference code and converted here, separately
from the hand-written cells in `searchcore.known`, so a slip in either shows up.
"""

from __future__ import annotations

from collections import Counter

import pytest

from searchcore.errors import UnknownNameError
from searchcore.known import KNOWN, get_known
from searchcore.spaces.nasnet import NUM_CELL_INPUTS, Block, Cell, Genotype

# -- converters from each source's form ------------------------------------------------------

SLIM_OPS = {
    "separable_3x3_2": "sep_conv_3x3",
    "separable_5x5_2": "sep_conv_5x5",
    "separable_7x7_2": "sep_conv_7x7",
    "avg_pool_3x3": "avg_pool_3x3",
    "max_pool_3x3": "max_pool_3x3",
    "none": "identity",
    "1x7_7x1": "conv_1x7_7x1",
}
ENAS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip_connect")


def from_slim(operations: list[str], hiddenstate_indices: list[int], used_hiddenstates: list[int]) -> Cell:
    """slim/TPU: state 0 is the current input (our 1), 1 the previous (our 0); used=0 → output."""
    ours = [1, 0] + list(range(2, len(used_hiddenstates)))
    blocks = tuple(
        Block(inputs=(ours[hiddenstate_indices[i]], ours[hiddenstate_indices[i + 1]]),
              ops=(SLIM_OPS[operations[i]], SLIM_OPS[operations[i + 1]]))
        for i in range(0, len(operations), 2)
    )
    concat = tuple(sorted(ours[i] for i, used in enumerate(used_hiddenstates) if not used))
    return Cell(blocks=blocks, concat=concat)


def from_enas(arc: str) -> Cell:
    """ENAS micro arc: (x input, x op, y input, y op) per block, numbered as we do."""
    numbers = [int(n) for n in arc.split()]
    blocks = tuple(
        Block(inputs=(numbers[i], numbers[i + 2]), ops=(ENAS_OPS[numbers[i + 1]], ENAS_OPS[numbers[i + 3]]))
        for i in range(0, len(numbers), 4)
    )
    return Cell(blocks=blocks)


def enas_output_states(cell: Cell) -> tuple[int, ...]:
    """micro_child.py's `_fixed_combine`: every state no block reads, the two inputs included."""
    read = cell.used_states()
    return tuple(i for i in range(cell.num_states) if i not in read)


# tensorflow/models research/slim/nets/nasnet/nasnet_utils.py
SLIM_NASNET_A_NORMAL = (
    ["separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2", "avg_pool_3x3",
     "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none"],
    [0, 1, 1, 1, 0, 1, 1, 1, 0, 0],
    [1, 0, 0, 0, 0, 0, 0],
)
SLIM_NASNET_A_REDUCTION = (
    ["separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2", "avg_pool_3x3",
     "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2", "max_pool_3x3"],
    [0, 1, 0, 1, 0, 1, 3, 2, 2, 0],
    [1, 1, 1, 0, 0, 0, 0],
)
# tensorflow/tpu models/official/amoeba_net/model_specs.py, 'amoeba_net_a'
TPU_AMOEBANET_A_NORMAL = (
    ["avg_pool_3x3", "max_pool_3x3", "separable_3x3_2", "none", "none", "avg_pool_3x3",
     "separable_3x3_2", "separable_5x5_2", "avg_pool_3x3", "separable_3x3_2"],
    [0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
    [1, 0, 1, 0, 0, 1, 0],
)
TPU_AMOEBANET_A_REDUCTION = (
    ["separable_3x3_2", "avg_pool_3x3", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
     "max_pool_3x3", "separable_3x3_2", "1x7_7x1", "avg_pool_3x3", "separable_7x7_2"],
    [1, 0, 0, 2, 1, 0, 4, 0, 1, 0],
    [1, 1, 0, 0, 0, 0, 0],
)
# melodyguan/enas scripts/cifar10_micro_final.sh
ENAS_NORMAL_ARC = "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1"
ENAS_REDUCE_ARC = "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
# quark0/darts cnn/genotypes.py
DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
DARTS_NASNET_TEXT = (
    "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0), "
    "('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 1)], normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), "
    "('max_pool_3x3', 1), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), "
    "('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], reduce_concat=[4, 5, 6])"
)
DARTS_AMOEBANET_TEXT = (
    "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2), "
    "('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1), ('skip_connect', 0), "
    "('avg_pool_3x3', 1)], normal_concat=[4, 5, 6], reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), "
    "('max_pool_3x3', 0), ('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], reduce_concat=[3, 4, 6])"
)


# -- every registered cell -------------------------------------------------------------------

@pytest.mark.parametrize("name", KNOWN.names())
def test_known_genotype_is_valid_and_survives_json(name):
    genotype = get_known(name)
    assert isinstance(genotype, Genotype)
    assert Genotype.from_json(genotype.to_json()) == genotype


@pytest.mark.parametrize("name", KNOWN.names())
def test_known_genotype_round_trips_through_darts_strings(name):
    genotype = get_known(name)
    assert Genotype.from_darts(genotype.to_darts()).canonical_hash() == genotype.canonical_hash()


def test_known_genotypes_are_distinct_networks():
    hashes = {get_known(name).canonical_hash() for name in KNOWN.names()}
    assert len(hashes) == len(KNOWN)


def test_the_published_cells_are_registered():
    assert {"nasnet-a", "amoebanet-a", "darts-v2", "enas"} <= set(KNOWN.names())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown known genotype 'nasnet-z'; known: amoebanet-a"):
        get_known("nasnet-z")


# -- NASNet-A ----------------------------------------------------------------------------------

def test_nasnet_a_matches_slim():
    nasnet_a = get_known("nasnet-a")
    assert nasnet_a.normal == from_slim(*SLIM_NASNET_A_NORMAL)
    assert nasnet_a.reduction == from_slim(*SLIM_NASNET_A_REDUCTION)


def test_nasnet_a_has_the_ops_of_figure_4():
    # Figure 4's op boxes as the paper's text lists them (both cells, B = 5 blocks each).
    figure_4 = ("max 3x3, sep 3x3, identity, sep 3x3, sep 5x5, identity, avg 3x3, avg 3x3, sep 3x3, avg 3x3, "
                "sep 5x5, avg 3x3, identity, sep 3x3, sep 7x7, sep 5x5, max 3x3, sep 7x7, avg 3x3, sep 5x5")
    names = {"max 3x3": "max_pool_3x3", "avg 3x3": "avg_pool_3x3", "identity": "identity",
             "sep 3x3": "sep_conv_3x3", "sep 5x5": "sep_conv_5x5", "sep 7x7": "sep_conv_7x7"}
    nasnet_a = get_known("nasnet-a")
    ops = [op for cell in (nasnet_a.normal, nasnet_a.reduction) for block in cell.blocks for op in block.ops]
    assert Counter(ops) == Counter(names[label] for label in figure_4.split(", "))
    assert len(nasnet_a.normal.blocks) == len(nasnet_a.reduction.blocks) == 5


def test_nasnet_a_keeps_slims_hand_set_concat():
    # Normal: h_{i-1} and all five blocks, 6 × F channels; reduction: blocks 1..4, 4 × F.
    nasnet_a = get_known("nasnet-a")
    assert nasnet_a.normal.output_states() == (0, 2, 3, 4, 5, 6)
    assert nasnet_a.reduction.output_states() == (3, 4, 5, 6)
    # The paper's "unused hidden states" rule would give other outputs.
    assert Cell(blocks=nasnet_a.normal.blocks).output_states() == (2, 3, 4, 5, 6)
    assert Cell(blocks=nasnet_a.reduction.blocks).output_states() == (4, 5, 6)


def test_dartss_nasnet_has_our_blocks_but_another_concat():
    darts = Genotype.from_darts(DARTS_NASNET_TEXT.replace("skip_connect", "identity"))
    nasnet_a = get_known("nasnet-a")
    assert darts.normal.blocks == nasnet_a.normal.blocks
    assert darts.reduction.blocks == nasnet_a.reduction.blocks
    assert darts.canonical_hash() != nasnet_a.canonical_hash()


# -- AmoebaNet-A -------------------------------------------------------------------------------

def test_amoebanet_a_matches_the_tpu_code():
    amoebanet_a = get_known("amoebanet-a")
    assert amoebanet_a.normal == from_slim(*TPU_AMOEBANET_A_NORMAL)
    assert amoebanet_a.reduction == from_slim(*TPU_AMOEBANET_A_REDUCTION)


def _swap_inputs(cell: Cell) -> Cell:
    """Swap hidden states 0 and 1 and drop the concat."""
    swap = {0: 1, 1: 0}
    return Cell(blocks=tuple(Block(tuple(swap.get(i, i) for i in b.inputs), b.ops, b.combine) for b in cell.blocks))


def _blocks_only(cell: Cell) -> Cell:
    """The cell with the paper's concat rule instead of its own."""
    return Cell(blocks=cell.blocks)


def test_dartss_amoebanet_uses_slims_numbering():
    darts = Genotype.from_darts(DARTS_AMOEBANET_TEXT.replace("skip_connect", "identity")
                                .replace("conv_7x1_1x7", "conv_1x7_7x1"))
    ours = get_known("amoebanet-a")

    # With 0 and 1 swapped, DARTS's reduction cell is the TPU one up to block order...
    swapped = Genotype(normal=_swap_inputs(darts.normal), reduction=_swap_inputs(darts.reduction))
    assert swapped.reduction.canonical() == _blocks_only(ours.reduction).canonical()
    # ...but its normal cell's first max pool reads h_{i-1} where the TPU code reads h_i.
    first = ours.normal.blocks[0]
    assert first.ops == ("avg_pool_3x3", "max_pool_3x3") and first.inputs == (1, 1)
    assert swapped.normal.blocks[0] == Block((1, 0), first.ops)
    fixed = Cell(blocks=(Block((1, 1), first.ops),) + swapped.normal.blocks[1:])
    assert fixed.canonical() == _blocks_only(ours.normal).canonical()
    # DARTS concatenates the unused blocks, where the TPU masks also keep some read states.
    for cell in (darts.normal, darts.reduction):
        assert cell.output_states() == _blocks_only(cell).output_states()


# -- DARTS and ENAS --------------------------------------------------------------------------

def test_darts_v2_equals_the_darts_string():
    assert Genotype.from_darts(DARTS_V2_TEXT) == get_known("darts-v2")


def test_darts_v2_concatenates_all_four_nodes():
    darts_v2 = get_known("darts-v2")
    for cell in (darts_v2.normal, darts_v2.reduction):
        assert len(cell.blocks) == 4
        assert cell.output_states() == tuple(range(NUM_CELL_INPUTS, NUM_CELL_INPUTS + 4))


def test_enas_matches_the_final_micro_arc():
    enas = get_known("enas")
    assert enas.normal == from_enas(ENAS_NORMAL_ARC)
    assert enas.reduction == from_enas(ENAS_REDUCE_ARC)
    # ENAS also concatenates an unread cell input; neither cell has one, so our rule agrees.
    assert enas.normal.output_states() == enas_output_states(enas.normal)
    assert enas.reduction.output_states() == enas_output_states(enas.reduction)
