"""Draw genotypes with Graphviz, so a user can see the cell a trial found.

Each genotype format registers its drawing (`GenotypeFormat.draw`), and `genotype_graph`
dispatches on it. NASNet cells are drawn in the spirit of the paper's Figure 4: the cell's two
inputs h_{i-1} and h_i at the bottom, each block's two op boxes (coloured by op family)
feeding its combination node, and a final concat node feeding h_{i+1}. A NAS-v1 macro
genotype is drawn as its chain of convolutions with the skip connections.
"""

from __future__ import annotations

import graphviz

from searchcore.errors import ConfigError
from searchcore.registry import import_target
from searchcore.spaces import GenotypeLike, format_of
from searchcore.spaces.macro import MacroGenotype
from searchcore.spaces.nasnet import NUM_CELL_INPUTS, Cell, Genotype, cells_of

#: The family of every op name in `searchcore.opnames.ALL_OPS`, which picks its colour.
OP_FAMILIES: dict[str, str] = {
    "identity": "identity",
    "skip_connect": "identity",
    "none": "zero",
    "conv_1x1": "conv",
    "conv_3x3": "conv",
    "conv_1x3_3x1": "conv",
    "conv_1x7_7x1": "conv",
    "dilated_conv_3x3": "conv",
    "sep_conv_3x3": "separable conv",
    "sep_conv_5x5": "separable conv",
    "sep_conv_7x7": "separable conv",
    "dil_conv_3x3": "separable conv",
    "dil_conv_5x5": "separable conv",
    "avg_pool_3x3": "pool",
    "max_pool_3x3": "pool",
    "max_pool_5x5": "pool",
    "max_pool_7x7": "pool",
}

FAMILY_COLORS: dict[str, str] = {
    "separable conv": "#fde58a",  # the paper's yellow for primitive ops
    "conv": "#f9c784",
    "pool": "#a9d1f5",
    "identity": "#e4e4e4",
    "zero": "#ffffff",
}
INPUT_COLOR = "#ffffff"
COMBINE_COLOR = "#b7e4a7"  # the paper's green for combination ops
OUTPUT_COLOR = "#f7c6d0"  # the paper's pink for the output concat

_INPUT_LABELS = ("<h<SUB>i-1</SUB>>", "<h<SUB>i</SUB>>")
_OUTPUT_LABEL = "<h<SUB>i+1</SUB>>"
_BOX = {"shape": "box", "style": "filled,rounded"}
_OVAL = {"shape": "ellipse", "style": "filled"}
_FONT = {"fontname": "Helvetica"}


def cell_graph(cell: Cell, name: str) -> graphviz.Digraph:
    """One cell as a cluster named `cluster_<name>`, drawable alone or inside a genotype."""
    graph = graphviz.Digraph(name=f"cluster_{name}", node_attr=_FONT)
    graph.attr(label=f"{name.capitalize()} Cell", labelloc="t", style="rounded", rankdir="BT", **_FONT)

    def state_node(index: int) -> str:
        return f"{name}_h{index}"

    with graph.subgraph() as inputs:  # both inputs on the bottom row, as in Figure 4
        inputs.attr(rank="min")
        for index, label in enumerate(_INPUT_LABELS):
            inputs.node(state_node(index), label=label, fillcolor=INPUT_COLOR, **_BOX)
    for k, block in enumerate(cell.blocks):
        combine = state_node(NUM_CELL_INPUTS + k)
        graph.node(combine, label=block.combine, fillcolor=COMBINE_COLOR, **_OVAL)
        for j, (source, op) in enumerate(zip(block.inputs, block.ops)):
            op_node = f"{name}_op{k}_{j}"
            graph.node(op_node, label=op, fillcolor=FAMILY_COLORS[OP_FAMILIES[op]], **_BOX)
            graph.edge(state_node(source), op_node)
            graph.edge(op_node, combine)
    concat, output = f"{name}_concat", f"{name}_output"
    graph.node(concat, label="concat", fillcolor=OUTPUT_COLOR, **_OVAL)
    for index in cell.output_states():
        graph.edge(state_node(index), concat)
    graph.node(output, label=_OUTPUT_LABEL, fillcolor=INPUT_COLOR, **_BOX)
    graph.edge(concat, output)
    return graph


def nasnet_graph(genotype: Genotype) -> graphviz.Digraph:
    """The Normal and Reduction cells side by side."""
    graph = graphviz.Digraph(name="genotype")
    graph.attr(rankdir="BT")
    for name, cell in cells_of(genotype):
        graph.subgraph(cell_graph(cell, name))
    return graph


def macro_graph(genotype: MacroGenotype) -> graphviz.Digraph:
    """A NAS-v1 network: one box per convolution, dashed edges for skip connections."""
    graph = graphviz.Digraph(name="macro", node_attr=_FONT)
    graph.attr(rankdir="BT")
    graph.node("image", label="image", fillcolor=INPUT_COLOR, **_BOX)
    read: set[int] = set()
    for k, layer in enumerate(genotype.layers):
        label = f"layer {k}\n{layer.filter_height}x{layer.filter_width} conv, {layer.num_filters}"
        if layer.stride > 1:
            label += f"\nstride {layer.stride}"
        graph.node(f"layer{k}", label=label, fillcolor=FAMILY_COLORS["conv"], **_BOX)
        if not layer.skips:
            graph.edge("image", f"layer{k}")
        for source in layer.skips:
            graph.edge(f"layer{source}", f"layer{k}", style="solid" if source == k - 1 else "dashed")
        read.update(layer.skips)
    # The paper concatenates the layers no later layer reads before the classifier.
    outputs = [k for k in range(len(genotype.layers)) if k not in read]
    graph.node("softmax", label="softmax", fillcolor=INPUT_COLOR, **_BOX)
    if len(outputs) == 1:
        graph.edge(f"layer{outputs[0]}", "softmax")
    else:
        graph.node("concat", label="concat", fillcolor=OUTPUT_COLOR, **_OVAL)
        for k in outputs:
            graph.edge(f"layer{k}", "concat")
        graph.edge("concat", "softmax")
    return graph


def genotype_graph(genotype: GenotypeLike) -> graphviz.Digraph:
    """Any genotype, drawn by the function its format registered."""
    return import_target(format_of(genotype, "draw").draw)(genotype)


def render_cell(cell: Cell, name: str = "normal", fmt: str = "svg") -> bytes:
    """One cell drawn in `fmt` (any Graphviz output format)."""
    return _pipe(cell_graph(cell, name), fmt)


def render_genotype(genotype: GenotypeLike, fmt: str = "svg") -> bytes:
    """A whole genotype drawn in `fmt` (any Graphviz output format)."""
    return _pipe(genotype_graph(genotype), fmt)


def _pipe(graph: graphviz.Digraph, fmt: str) -> bytes:
    if fmt not in graphviz.FORMATS:
        raise ConfigError(f"render format {fmt!r} is not a Graphviz output format (e.g. svg, png, pdf)")
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise ConfigError(
            "render: Graphviz's `dot` program is not on PATH; install Graphviz (e.g. apt-get install graphviz)"
        ) from None
