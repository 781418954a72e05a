"""Published cells, in our numbering, so they can be trained, drawn and compared by name.

Our numbering (see `searchcore.spaces.nasnet.genotype`): hidden state 0 is h_{i-1} (the cell two back),
1 is h_i (the cell one back) and 2 + k is block k. The sources number differently:

* tensorflow/models slim and tensorflow/tpu amoeba_net keep `net = [h0, h1, blocks...]`
  with h0 = the *current* input (h_i, after ReLU → 1×1 conv → BN) and h1 = the *previous*
  input (h_{i-1}), so their 0 and 1 swap into ours; block states 2.. are the same. Their
  `operations` and `hiddenstate_indices` list the left then the right branch of each block in
  turn, every block adds, and the output concatenates the states whose `used_hiddenstates`
  flag is 0. That flag is set by hand, not by use: NASNet-A and AmoebaNet-A concatenate some
  states that blocks also read, so those cells keep an explicit `concat`.
* quark0/darts and melodyguan/enas already number like us (0 = two back, 1 = one back).

Op names map as slim 'separable_KxK_2' → 'sep_conv_KxK' (two stacked ReLU-sep-BN, the first
strided), 'none' → 'identity', '1x7_7x1' → 'conv_1x7_7x1', pools keep their names; DARTS
names are ours; ENAS's op ids 0..4 are sep_conv_3x3, sep_conv_5x5, avg_pool_3x3,
max_pool_3x3 and identity, whose strided form is a factorized reduction, i.e. DARTS's
'skip_connect'.

NASNet-B and NASNet-C (paper appendix B, Figures 7 and 8) are not here. The paper gives them
only as figures, whose wiring its text does not state, and both come from different search
spaces that this format cannot express: B combines with "addition followed by layer
normalization or instance normalization", reads 4 input hidden states and feeds every block
output to the next four layers; C uses the same normalized additions.
"""

from __future__ import annotations

from searchcore.registry import Registry
from searchcore.spaces.nasnet import Block, Cell, Genotype

KNOWN: Registry[Genotype] = Registry("known genotype")


def get_known(name: str) -> Genotype:
    """The published genotype registered under `name` (raises UnknownNameError listing all)."""
    return KNOWN.get(name)


def _add(a: int, op_a: str, b: int, op_b: str) -> Block:
    """A block that adds op_a(state a) and op_b(state b)."""
    return Block(inputs=(a, b), ops=(op_a, op_b), combine="add")


def _cell(*blocks: Block, concat: tuple[int, ...] | None = None) -> Cell:
    return Cell(blocks=blocks, concat=concat)


# NASNet-A (Zoph et al. 2018, Figure 4), from tensorflow/models
# research/slim/nets/nasnet/nasnet_utils.py, NasNetANormalCell:
#   operations = [separable_5x5_2, separable_3x3_2, separable_5x5_2, separable_3x3_2,
#                 avg_pool_3x3, none, avg_pool_3x3, avg_pool_3x3, separable_3x3_2, none]
#   hiddenstate_indices = [0, 1, 1, 1, 0, 1, 1, 1, 0, 0]; used_hiddenstates = [1, 0, 0, 0, 0, 0, 0]
# and NasNetAReductionCell:
#   operations = [separable_5x5_2, separable_7x7_2, max_pool_3x3, separable_7x7_2, avg_pool_3x3,
#                 separable_5x5_2, none, avg_pool_3x3, separable_3x3_2, max_pool_3x3]
#   hiddenstate_indices = [0, 1, 0, 1, 0, 1, 3, 2, 2, 0]; used_hiddenstates = [1, 1, 1, 0, 0, 0, 0]
# with slim 0 ↔ 1 swapped. The normal cell's output holds h_{i-1} (read by blocks 0..3) and
# the reduction cell's holds block 1 (read by block 3), as slim, Cadene's and timm's ports do.
NASNET_A = KNOWN.register(
    "nasnet-a",
    Genotype(
        normal=_cell(
            _add(1, "sep_conv_5x5", 0, "sep_conv_3x3"),
            _add(0, "sep_conv_5x5", 0, "sep_conv_3x3"),
            _add(1, "avg_pool_3x3", 0, "identity"),
            _add(0, "avg_pool_3x3", 0, "avg_pool_3x3"),
            _add(1, "sep_conv_3x3", 1, "identity"),
            concat=(0, 2, 3, 4, 5, 6),
        ),
        reduction=_cell(
            _add(1, "sep_conv_5x5", 0, "sep_conv_7x7"),
            _add(1, "max_pool_3x3", 0, "sep_conv_7x7"),
            _add(1, "avg_pool_3x3", 0, "sep_conv_5x5"),
            _add(3, "identity", 2, "avg_pool_3x3"),
            _add(2, "sep_conv_3x3", 1, "max_pool_3x3"),
            concat=(3, 4, 5, 6),
        ),
    ),
)

# AmoebaNet-A (Real et al. 2019), from tensorflow/tpu models/official/amoeba_net/model_specs.py,
# cell 'amoeba_net_a' (= 'evol_net_g'), slim-style like NASNet-A above. Normal:
#   operations = [avg_pool_3x3, max_pool_3x3, separable_3x3_2, none, none, avg_pool_3x3,
#                 separable_3x3_2, separable_5x5_2, avg_pool_3x3, separable_3x3_2]
#   hiddenstate_indices = [0, 0, 1, 1, 0, 1, 0, 2, 5, 0]; used_hiddenstates = [1, 0, 1, 0, 0, 1, 0]
# Reduction:
#   operations = [separable_3x3_2, avg_pool_3x3, max_pool_3x3, separable_7x7_2, max_pool_3x3,
#                 max_pool_3x3, separable_3x3_2, 1x7_7x1, avg_pool_3x3, separable_7x7_2]
#   hiddenstate_indices = [1, 0, 0, 2, 1, 0, 4, 0, 1, 0]; used_hiddenstates = [1, 1, 0, 0, 0, 0, 0]
# quark0/darts's `AmoebaNet` genotype is not this network: it keeps slim's 0/1 numbering under
# DARTS's convention, reads h_{i-1} in the normal cell's first max pool where the TPU code
# reads h_i, and concatenates only the unused blocks (tests/searchcore/test_known.py checks).
AMOEBANET_A = KNOWN.register(
    "amoebanet-a",
    Genotype(
        normal=_cell(
            _add(1, "avg_pool_3x3", 1, "max_pool_3x3"),
            _add(0, "sep_conv_3x3", 0, "identity"),
            _add(1, "identity", 0, "avg_pool_3x3"),
            _add(1, "sep_conv_3x3", 2, "sep_conv_5x5"),
            _add(5, "avg_pool_3x3", 1, "sep_conv_3x3"),
            concat=(0, 3, 4, 6),
        ),
        reduction=_cell(
            _add(0, "sep_conv_3x3", 1, "avg_pool_3x3"),
            _add(1, "max_pool_3x3", 2, "sep_conv_7x7"),
            _add(0, "max_pool_3x3", 1, "max_pool_3x3"),
            _add(4, "sep_conv_3x3", 1, "conv_1x7_7x1"),
            _add(0, "avg_pool_3x3", 1, "sep_conv_7x7"),
            concat=(2, 3, 4, 5, 6),
        ),
    ),
)

# DARTS (second order), quark0/darts cnn/genotypes.py `DARTS_V2`, numbered as we do. DARTS
# concatenates every intermediate node, read or not, hence the explicit concat.
DARTS_V2 = KNOWN.register(
    "darts-v2",
    Genotype(
        normal=_cell(
            _add(0, "sep_conv_3x3", 1, "sep_conv_3x3"),
            _add(0, "sep_conv_3x3", 1, "sep_conv_3x3"),
            _add(1, "sep_conv_3x3", 0, "skip_connect"),
            _add(0, "skip_connect", 2, "dil_conv_3x3"),
            concat=(2, 3, 4, 5),
        ),
        reduction=_cell(
            _add(0, "max_pool_3x3", 1, "max_pool_3x3"),
            _add(2, "skip_connect", 1, "max_pool_3x3"),
            _add(0, "max_pool_3x3", 2, "skip_connect"),
            _add(2, "skip_connect", 1, "max_pool_3x3"),
            concat=(2, 3, 4, 5),
        ),
    ),
)

# ENAS micro cell (Pham et al. 2018), melodyguan/enas scripts/cifar10_micro_final.sh:
#   normal arc "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1"
#   reduce arc "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
# four numbers a block (x input, x op, y input, y op; README). src/cifar10/micro_child.py
# concatenates every state no block reads, inputs included; both inputs are read in both
# cells, so this is the paper's rule and no explicit concat is needed.
ENAS = KNOWN.register(
    "enas",
    Genotype(
        normal=_cell(
            _add(0, "avg_pool_3x3", 0, "sep_conv_3x3"),
            _add(0, "skip_connect", 0, "sep_conv_5x5"),
            _add(0, "skip_connect", 1, "sep_conv_5x5"),
            _add(1, "sep_conv_3x3", 0, "sep_conv_5x5"),
            _add(0, "avg_pool_3x3", 1, "sep_conv_5x5"),
        ),
        reduction=_cell(
            _add(1, "sep_conv_3x3", 1, "sep_conv_3x3"),
            _add(0, "max_pool_3x3", 0, "avg_pool_3x3"),
            _add(1, "sep_conv_5x5", 3, "sep_conv_5x5"),
            _add(1, "sep_conv_3x3", 0, "skip_connect"),
            _add(0, "max_pool_3x3", 1, "sep_conv_5x5"),
        ),
    ),
)
