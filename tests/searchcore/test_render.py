"""Graphviz drawings of genotypes: the real `dot` binary renders every known cell."""

from __future__ import annotations

import re

import numpy as np
import pytest

from searchcore.errors import ConfigError, GenotypeError
from searchcore.known import KNOWN, get_known
from searchcore.opnames import ALL_OPS
from searchcore.registry import import_target
from searchcore.render import (
    FAMILY_COLORS,
    LEGEND_ENTRIES,
    OP_FAMILIES,
    STRIDE_MARK,
    STRIDED_PENWIDTH,
    cell_graph,
    genotype_graph,
    render_cell,
    render_genotype,
)
from searchcore.spaces import GENOTYPE_FORMATS, SPACES, create_space
from searchcore.spaces.macro import MacroGenotype, MacroLayer
from searchcore.spaces.nasnet import Block, Cell, Genotype, NasnetCellSpace, cells_of


def svg_texts(svg: bytes) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg.decode())


def node_titles(svg: bytes) -> list[str]:
    return re.findall(r"<title>([^<]*)</title>", svg.decode())


def node_positions(svg: bytes) -> dict[str, tuple[float, float]]:
    """Each node's (x, y) in the SVG (y grows downwards), read from its first label text."""
    nodes = re.findall(r'class="node">\s*<title>([^<]*)</title>.*?<text[^>]* x="([-\d.]+)" y="([-\d.]+)"',
                       svg.decode(), flags=re.DOTALL)
    return {name: (float(x), float(y)) for name, x, y in nodes}


def text_position(svg: bytes, text: str) -> tuple[float, float]:
    x, y = re.search(rf'<text[^>]* x="([-\d.]+)" y="([-\d.]+)"[^>]*>{re.escape(text)}</text>', svg.decode()).groups()
    return float(x), float(y)


def op_label(op: str, source: int, cell_name: str) -> str:
    """What the drawing should say for `op` reading hidden state `source` (the paper's stride-2 rule)."""
    return op + STRIDE_MARK if cell_name == "reduction" and source < 2 else op


@pytest.mark.parametrize("name", KNOWN.names())
def test_known_genotype_renders_both_cells_side_by_side(name):
    genotype = get_known(name)
    svg = render_genotype(genotype)
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    texts, titles = svg_texts(svg), node_titles(svg)
    assert {"Normal Cell", "Reduction Cell"} <= set(texts)
    assert {"cluster_normal", "cluster_reduction"} <= set(titles)
    for cell_name, cell in cells_of(genotype):
        op_nodes = [t for t in titles if re.fullmatch(rf"{cell_name}_op\d+_\d", t)]
        assert len(op_nodes) == 2 * len(cell.blocks)
        for block in cell.blocks:
            for source, op in zip(block.inputs, block.ops):
                assert op_label(op, source, cell_name) in texts
    assert texts.count("add") == len(genotype.normal.blocks) + len(genotype.reduction.blocks)
    assert texts.count("concat") == 2  # one output concat per cell; every known cell adds


def test_nasnet_a_has_ten_op_boxes_per_cell():
    titles = node_titles(render_genotype(get_known("nasnet-a")))
    for cell_name in ("normal", "reduction"):
        assert len([t for t in titles if re.fullmatch(rf"{cell_name}_op\d+_\d", t)]) == 10


def test_cell_graph_wires_inputs_ops_combines_and_output():
    normal = get_known("nasnet-a").normal
    source = cell_graph(normal, "normal").source
    assert "label=<h<SUB>i-1</SUB>>" in source and "label=<h<SUB>i</SUB>>" in source
    assert "label=<h<SUB>i+1</SUB>>" in source
    # Block 0 = sep_conv_5x5(h_i) + sep_conv_3x3(h_{i-1}).
    for edge in ("normal_h1 -> normal_op0_0", "normal_h0 -> normal_op0_1",
                 "normal_op0_0 -> normal_h2", "normal_op0_1 -> normal_h2"):
        assert edge in source
    # The output takes slim's hand-set states: h_{i-1} and every block, not h_i.
    fed = set(re.findall(r"normal_h(\d+) -> normal_concat", source))
    assert fed == {"0", "2", "3", "4", "5", "6"}


def test_concat_blocks_are_drawn_as_concat_nodes():
    space = NasnetCellSpace(num_blocks=3, combines=("concat",))
    genotype = space.sample(np.random.default_rng(0))
    texts = svg_texts(render_genotype(genotype))
    assert "add" not in texts
    assert texts.count("concat") == 2 * 3 + 2


def test_render_cell_draws_one_cell():
    svg = render_cell(get_known("darts-v2").reduction, "reduction")
    titles = node_titles(svg)
    assert "Reduction Cell" in svg_texts(svg)
    assert len([t for t in titles if re.fullmatch(r"reduction_op\d+_\d", t)]) == 8
    assert not any(t.startswith("normal_") for t in titles)


def test_other_formats_render():
    assert render_genotype(get_known("enas"), fmt="png").startswith(b"\x89PNG")


def test_unknown_format_is_a_config_error():
    with pytest.raises(ConfigError, match="'svgz2' is not a Graphviz output format"):
        render_genotype(get_known("enas"), fmt="svgz2")


def test_missing_dot_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="`dot` program is not on PATH"):
        render_genotype(get_known("enas"))


def test_every_op_has_a_family_and_colour():
    assert set(OP_FAMILIES) == set(ALL_OPS)
    assert set(OP_FAMILIES.values()) == set(FAMILY_COLORS)


def test_macro_genotype_renders_as_a_layer_chain_with_skips():
    genotype = MacroGenotype(layers=(
        MacroLayer(3, 3, 36),
        MacroLayer(5, 3, 48, skips=(0,)),
        MacroLayer(3, 7, 24, stride=2, skips=(0, 1)),
        MacroLayer(1, 1, 64, skips=(1,)),
    ))
    source = genotype_graph(genotype).source
    assert "image -> layer0" in source
    assert re.search(r"layer0 -> layer2 \[style=dashed\]", source)
    assert re.search(r"layer1 -> layer2 \[style=solid\]", source)
    # Layers 2 and 3 are read by no later layer, so both reach the classifier.
    assert "layer2 -> concat" in source and "layer3 -> concat" in source and "concat -> softmax" in source
    texts = svg_texts(render_genotype(genotype))
    assert {"3x7 conv, 24", "stride 2", "softmax"} <= set(texts)


def test_a_plain_macro_chain_feeds_the_classifier_directly():
    genotype = MacroGenotype(layers=(MacroLayer(3, 3, 36), MacroLayer(3, 3, 36, skips=(0,))))
    source = genotype_graph(genotype).source
    assert "layer1 -> softmax" in source and "concat" not in source


@pytest.mark.parametrize("space_name", SPACES.names())
def test_every_space_draws_through_its_registered_format(space_name):
    genotype = create_space(space_name).sample(np.random.default_rng(0))
    assert genotype_graph(genotype).source == import_target(GENOTYPE_FORMATS.get(genotype.format).draw)(genotype).source
    assert b"<svg" in render_genotype(genotype)


def test_something_else_is_a_genotype_error():
    with pytest.raises(GenotypeError, match="cannot draw a dict"):
        render_genotype({"format": "cellsearch.nasnet/1"})


def test_cells_with_any_number_of_blocks_render():
    one = Cell(blocks=(Block((0, 1), ("none", "dilated_conv_3x3"), "concat"),))
    svg = render_genotype(Genotype(normal=one, reduction=one))
    assert {"none", "dilated_conv_3x3"} <= set(svg_texts(svg))


SAMPLED = [NasnetCellSpace().sample(np.random.default_rng(seed)) for seed in range(12)]
DRAWN = [get_known(name) for name in KNOWN.names()] + SAMPLED


@pytest.mark.parametrize("genotype", DRAWN)
def test_inputs_are_always_drawn_h_i_minus_1_left_of_h_i_on_one_row(genotype):
    positions = node_positions(render_genotype(genotype))
    for cell_name in ("normal", "reduction"):
        (left_x, left_y), (right_x, right_y) = positions[f"{cell_name}_h0"], positions[f"{cell_name}_h1"]
        assert left_x < right_x and left_y == right_y
        assert all(y <= left_y for name, (_, y) in positions.items() if name.startswith(cell_name))  # bottom row


def test_a_reduction_cell_marks_exactly_its_ops_on_the_cell_inputs_as_stride_2():
    genotype = get_known("nasnet-a")
    source = genotype_graph(genotype).source
    texts = svg_texts(render_genotype(genotype))
    strided = 0
    for cell_name, cell in cells_of(genotype):
        for k, block in enumerate(cell.blocks):
            for j, (state, op) in enumerate(zip(block.inputs, block.ops)):
                node = re.search(rf"\t{cell_name}_op{k}_{j} \[([^\]]*)\]", source).group(1)
                marked = cell_name == "reduction" and state < 2
                assert (f"label=\"{op}{STRIDE_MARK}\"" in node) is marked
                assert (f"penwidth={STRIDED_PENWIDTH}" in node) is marked
                strided += marked
    # NASNet-A's Reduction cell reads the inputs in 7 of its 10 ops (slim's nasnet_utils).
    assert strided == 7 == len([t for t in texts if t.endswith(STRIDE_MARK)])


def test_each_cell_name_is_drawn_above_its_cell():
    svg = render_genotype(get_known("enas"))
    positions = node_positions(svg)
    for cell_name, title in (("normal", "Normal Cell"), ("reduction", "Reduction Cell")):
        x, y = text_position(svg, title)
        cell_nodes = [pos for name, pos in positions.items() if name.startswith(f"{cell_name}_")]
        assert all(y < node_y for _, node_y in cell_nodes)
        assert min(nx for nx, _ in cell_nodes) < x < max(nx for nx, _ in cell_nodes)


def test_the_legend_is_inside_the_svg_under_the_cells():
    svg = render_genotype(get_known("nasnet-a"))
    texts = svg_texts(svg)
    lowest_node = max(y for _, y in node_positions(svg).values())
    for color, meaning in LEGEND_ENTRIES:
        assert meaning in texts
        assert text_position(svg, meaning)[1] > lowest_node
        assert f'fill="{color}"' in svg.decode()
    assert {"separable conv", "pool", "combination", "output concat", "hidden state"} <= set(texts)
    assert any("thick border: stride 2" in text for text in texts)
    assert [text for text in texts if "reduction cell" in text.lower()] == ["Reduction Cell"]  # the title alone


def test_a_normal_cell_alone_has_the_legend_without_the_stride_mark():
    texts = svg_texts(render_cell(get_known("nasnet-a").normal, "normal"))
    assert {meaning for _, meaning in LEGEND_ENTRIES} <= set(texts)
    assert not any("stride 2" in text or text.endswith(STRIDE_MARK) for text in texts)
