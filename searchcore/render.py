"""Draw genotypes with Graphviz, so a user can see the cell a trial found.

Each genotype format registers its drawing (`GenotypeFormat.draw`), and `genotype_graph`
dispatches on it. NASNet cells are drawn in the spirit of the paper's Figure 4 ("The input
(white) is the hidden state from previous activations [...] The output (pink) is the result of
a concatenation operation across all resulting branches. [...] A single block corresponds to
two primitive operations (yellow) and a combination operation (green)"): the cell's name on
top, its two inputs at the bottom, always h_{i-1} left of h_i, each block's two op boxes
(coloured by op family) feeding its combination node, and a final concat node feeding
h_{i+1}. A Reduction cell's ops that read the cell inputs carry "/2" and a thick border, since
"For the Reduction Cell, we make the initial operation applied to the cell's inputs have a
stride of two" (§3; `searchcore.models.nasnet.NASNetBlock` builds them so). The colour legend
is part of the drawing, so a downloaded SVG explains itself. A NAS-v1 macro genotype is drawn
as its chain of convolutions with the skip connections.
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
#: What marks an op a Reduction cell applies with stride 2: a suffix and a thick border.
STRIDE_MARK = " /2"
STRIDED_PENWIDTH = "2.5"

_INPUT_LABELS = ("<h<SUB>i-1</SUB>>", "<h<SUB>i</SUB>>")
_OUTPUT_LABEL = "<h<SUB>i+1</SUB>>"
_BOX = {"shape": "box", "style": "filled,rounded"}
_OVAL = {"shape": "ellipse", "style": "filled"}
_FONT = {"fontname": "Helvetica"}
_REDUCTION = "reduction"  # the name `cells_of` gives the Reduction cell


def is_strided(*, reduction: bool, source: int) -> bool:
    """Whether an op reading hidden state `source` has stride 2: in a Reduction cell, the ops
    on the cell's inputs do (as `searchcore.models.nasnet.NASNetBlock` builds them)."""
    return reduction and source < NUM_CELL_INPUTS


def cell_graph(cell: Cell, name: str) -> graphviz.Digraph:
    """One cell as a cluster named `cluster_<name>`, drawable alone or inside a genotype; the
    cell named "reduction" is drawn as a Reduction cell (its ops on the inputs strided)."""
    reduction = name == _REDUCTION
    graph = graphviz.Digraph(name=f"cluster_{name}", node_attr=_FONT)
    # rankdir=BT turns a cluster's label placement upside down too: "b" puts the name on top.
    graph.attr(label=f"{name.capitalize()} Cell", labelloc="b", fontsize="18", style="rounded", rankdir="BT", **_FONT)

    def state_node(index: int) -> str:
        return f"{name}_h{index}"

    with graph.subgraph() as inputs:  # both inputs on the bottom row, as in Figure 4
        inputs.attr(rank="min")
        for index, label in enumerate(_INPUT_LABELS):
            inputs.node(state_node(index), label=label, fillcolor=INPUT_COLOR, **_BOX)
        # A flat edge puts its tail left of its head: h_{i-1} stays left of h_i in every cell.
        inputs.edge(state_node(0), state_node(1), style="invis")
    for k, block in enumerate(cell.blocks):
        combine = state_node(NUM_CELL_INPUTS + k)
        graph.node(combine, label=block.combine, fillcolor=COMBINE_COLOR, **_OVAL)
        for j, (source, op) in enumerate(zip(block.inputs, block.ops)):
            op_node = f"{name}_op{k}_{j}"
            fill = FAMILY_COLORS[OP_FAMILIES[op]]
            if is_strided(reduction=reduction, source=source):
                graph.node(op_node, label=op + STRIDE_MARK, fillcolor=fill, penwidth=STRIDED_PENWIDTH, **_BOX)
            else:
                graph.node(op_node, label=op, fillcolor=fill, **_BOX)
            graph.edge(state_node(source), op_node)
            graph.edge(op_node, combine)
    concat, output = f"{name}_concat", f"{name}_output"
    graph.node(concat, label="concat", fillcolor=OUTPUT_COLOR, **_OVAL)
    for index in cell.output_states():
        graph.edge(state_node(index), concat)
    graph.node(output, label=_OUTPUT_LABEL, fillcolor=INPUT_COLOR, **_BOX)
    graph.edge(concat, output)
    return graph


#: The legend's entries: (fill colour, what it stands for), as in Figure 4's caption.
LEGEND_ENTRIES: tuple[tuple[str, str], ...] = (
    *((color, family) for family, color in FAMILY_COLORS.items()),
    (COMBINE_COLOR, "combination"),
    (OUTPUT_COLOR, "output concat"),
    (INPUT_COLOR, "hidden state"),
)
# Plain text: browsers draw Graphviz's subscripts poorly inside a line of an <img>'d SVG; and
# not "Reduction cell", which would be a second text naming the cell.
STRIDE_LEGEND = "stride 2 (a reduction's op on a cell input)"
LEGEND_PER_ROW = 4  # narrow enough for a small cell's drawing not to be all legend


def legend_label(*, strided: bool) -> str:
    """The colour legend as a Graphviz HTML-like label (and the stride-2 mark when `strided`)."""
    swatch = '<TD BGCOLOR="{}" BORDER="{}" WIDTH="14" HEIGHT="12" FIXEDSIZE="TRUE"></TD>'
    entries = [swatch.format(color, 1) + f'<TD ALIGN="LEFT">{text}</TD>' for color, text in LEGEND_ENTRIES]
    rows = "".join(f"<TR>{''.join(entries[start:start + LEGEND_PER_ROW])}</TR>"
                   for start in range(0, len(entries), LEGEND_PER_ROW))
    if strided:
        rows += f'<TR>{swatch.format(INPUT_COLOR, 3)}<TD ALIGN="LEFT" COLSPAN="{2 * LEGEND_PER_ROW - 1}">' \
            f"{STRIDE_MARK.strip()}, thick border: {STRIDE_LEGEND}</TD></TR>"
    return f'<<TABLE BORDER="0" CELLSPACING="3" CELLPADDING="1">{rows}</TABLE>>'


def _cells_with_legend(cells: list[tuple[str, Cell]]) -> graphviz.Digraph:
    """Cells side by side, the colour legend under them."""
    graph = graphviz.Digraph(name="genotype")
    # Without the final global crossing pass, dot keeps the inputs' flat edge left to right.
    graph.attr(rankdir="BT", label=legend_label(strided=any(name == _REDUCTION for name, _ in cells)),
               labelloc="b", fontsize="11", remincross="false", **_FONT)
    for name, cell in cells:
        graph.subgraph(cell_graph(cell, name))
    return graph


def nasnet_graph(genotype: Genotype) -> graphviz.Digraph:
    """The Normal and Reduction cells side by side, with the legend."""
    return _cells_with_legend(list(cells_of(genotype)))


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
    """One cell drawn in `fmt` (any Graphviz output format), with the legend."""
    return _pipe(_cells_with_legend([(name, cell)]), fmt)


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
