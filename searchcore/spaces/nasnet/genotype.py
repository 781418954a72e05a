"""NASNet cell genotypes: frozen dataclasses, a versioned JSON form, a canonical hash and DARTS strings.

Numbering (documented in docs/genotype-format.md): in a cell, hidden state 0 is the output
of the cell two back (h_{i-1} in the paper), 1 the output of the cell one back (h_i), and
2 + k the output of block k. This is the DARTS convention, so DARTS genotypes convert
without renumbering; the slim reference code swaps 0 and 1.

A cell's output concatenates the block outputs no block reads (the paper's rule) unless the
cell names its `concat` explicitly, as the reference NASNet-A and DARTS cells do.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from searchcore.errors import GenotypeError
from searchcore.opnames import ALL_OPS, COMBINE_OPS
from searchcore.spaces.registry import check_format, loads_json, sha256_of

NASNET_FORMAT = "cellsearch.nasnet/1"
#: Version of the canonical form that `canonical_hash` digests. Version 1 sorted only an add
#: block's branches; 2 sorts a concat block's too (the 1×1 projection after a concat makes the
#: branch order a permutation of its weights). Hashes stored under an older version are migrated.
CANONICAL_HASH_VERSION = 2
NUM_CELL_INPUTS = 2
#: The canonical hash tries every topological order of a cell's blocks, at most B! (8! takes
#: about a second in the worst case, every block independent); the paper uses B = 5.
MAX_BLOCKS = 8
#: A DARTS string longer than this is refused before it is parsed: MAX_BLOCKS blocks a cell take
#: under 1,000 characters, and `ast.parse` of megabytes takes seconds and gigabytes.
MAX_DARTS_CHARS = 20_000


@dataclass(frozen=True)
class Block:
    """One block: two (hidden state, op) branches merged by `combine`."""

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": list(self.inputs), "ops": list(self.ops), "combine": self.combine}


@dataclass(frozen=True)
class Cell:
    """A Normal or Reduction cell: B blocks and the hidden states its output concatenates."""

    blocks: tuple[Block, ...]
    concat: tuple[int, ...] | None = None

    @property
    def num_states(self) -> int:
        return NUM_CELL_INPUTS + len(self.blocks)

    def used_states(self) -> set[int]:
        return {i for block in self.blocks for i in block.inputs}

    def output_states(self) -> tuple[int, ...]:
        """Hidden states concatenated into the cell's output, in ascending order."""
        if self.concat is not None:
            return tuple(sorted(self.concat))
        used = self.used_states()
        return tuple(i for i in range(NUM_CELL_INPUTS, self.num_states) if i not in used)

    def validate(self, name: str) -> None:
        """Raise `GenotypeError` naming the cell, block and field at fault."""
        if not 1 <= len(self.blocks) <= MAX_BLOCKS:
            raise GenotypeError(f"{name} cell: has {len(self.blocks)} blocks; a cell has 1..{MAX_BLOCKS}")
        for k, block in enumerate(self.blocks):
            where = f"{name} cell, block {k}"
            if len(block.inputs) != 2:
                raise GenotypeError(f"{where}: inputs must hold 2 indices, got {len(block.inputs)}")
            if len(block.ops) != 2:
                raise GenotypeError(f"{where}: ops must hold 2 names, got {len(block.ops)}")
            for j, index in enumerate(block.inputs):
                if isinstance(index, bool) or not isinstance(index, int):
                    raise GenotypeError(f"{where}: inputs[{j}] must be an integer, got {index!r}")
                if not 0 <= index < NUM_CELL_INPUTS + k:
                    raise GenotypeError(
                        f"{where}: inputs[{j}] = {index} is out of range; "
                        f"block {k} may read hidden states 0..{NUM_CELL_INPUTS + k - 1}"
                    )
            for j, op in enumerate(block.ops):
                if op not in ALL_OPS:
                    raise GenotypeError(
                        f"{where}: ops[{j}] = {op!r} is not a known op; known: {', '.join(ALL_OPS)}"
                    )
            if block.combine not in COMBINE_OPS:
                raise GenotypeError(
                    f"{where}: combine = {block.combine!r} must be one of {', '.join(COMBINE_OPS)}"
                )
        if self.concat is not None:
            self._validate_concat(name, self.concat)
        if not self.output_states():
            raise GenotypeError(f"{name} cell: its output concatenates no hidden state")

    def _validate_concat(self, name: str, concat: tuple[int, ...]) -> None:
        where = f"{name} cell, concat"
        for index in concat:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.num_states:
                raise GenotypeError(
                    f"{where}: {index!r} is out of range; hidden states are 0..{self.num_states - 1}"
                )
        if len(set(concat)) != len(concat):
            raise GenotypeError(f"{where}: repeats a hidden state: {list(concat)}")
        reaches_output = set(concat)
        for k in reversed(range(len(self.blocks))):
            if NUM_CELL_INPUTS + k in reaches_output:
                reaches_output.update(self.blocks[k].inputs)
        for k in range(len(self.blocks)):
            if NUM_CELL_INPUTS + k not in reaches_output:
                raise GenotypeError(
                    f"{name} cell, block {k}: its output is neither read by a later block "
                    "nor concatenated, so it would be dead"
                )

    def to_dict(self) -> list[dict[str, Any]]:
        return [block.to_dict() for block in self.blocks]

    def canonical(self) -> Cell:
        """The same graph with blocks renumbered into one canonical order.

        Equivalent cells (a block's branches swapped, blocks renumbered without changing the
        graph, an implicit concat spelled out) map to the same canonical cell. We try every
        topological order of the blocks (at most B!: 120 for the paper's B = 5, 40320 for
        MAX_BLOCKS = 8) and keep the smallest.
        """
        best: tuple | None = None
        best_cell: Cell | None = None
        outputs = self.output_states()
        for order in _topological_orders(self.blocks):
            new_index = {i: i for i in range(NUM_CELL_INPUTS)}
            new_index.update({NUM_CELL_INPUTS + old: NUM_CELL_INPUTS + new for new, old in enumerate(order)})
            blocks = tuple(_renumbered(self.blocks[old], new_index) for old in order)
            concat = tuple(sorted(new_index[i] for i in outputs))
            key = (tuple((b.combine, b.inputs, b.ops) for b in blocks), concat)
            if best is None or key < best:
                best, best_cell = key, Cell(blocks=blocks, concat=concat)
        assert best_cell is not None
        return best_cell


def _renumbered(block: Block, new_index: Mapping[int, int]) -> Block:
    """The block under the new numbering, its branches sorted: addition commutes, and a concat's
    branch order only permutes the channels its 1×1 projection reads (CANONICAL_HASH_VERSION 2)."""
    (a, op_a), (b, op_b) = sorted((new_index[i], op) for i, op in zip(block.inputs, block.ops))
    return Block(inputs=(a, b), ops=(op_a, op_b), combine=block.combine)


def _topological_orders(blocks: tuple[Block, ...]) -> Iterable[tuple[int, ...]]:
    """Every order of block indices in which each block comes after the blocks it reads."""
    deps = [{i - NUM_CELL_INPUTS for i in b.inputs if i >= NUM_CELL_INPUTS} for b in blocks]

    def extend(order: list[int], placed: set[int]) -> Iterable[tuple[int, ...]]:
        if len(order) == len(blocks):
            yield tuple(order)
            return
        for k in range(len(blocks)):
            if k not in placed and deps[k] <= placed:
                order.append(k)
                placed.add(k)
                yield from extend(order, placed)
                order.pop()
                placed.discard(k)

    return extend([], set())


@dataclass(frozen=True)
class Genotype:
    """A NASNet architecture: one Normal and one Reduction cell."""

    normal: Cell
    reduction: Cell

    format = NASNET_FORMAT

    def __post_init__(self) -> None:
        self.normal.validate("normal")
        self.reduction.validate("reduction")

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": NASNET_FORMAT}
        for name, cell in (("normal", self.normal), ("reduction", self.reduction)):
            data[name] = cell.to_dict()
            if cell.concat is not None:
                data[f"{name}_concat"] = list(cell.concat)
        return data

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        check_format(data, NASNET_FORMAT)
        unknown = set(data) - {"format", "normal", "reduction", "normal_concat", "reduction_concat"}
        if unknown:
            raise GenotypeError(f"genotype: unknown field(s) {', '.join(sorted(unknown))}")
        cells = {name: _cell_from_dict(data, name) for name in ("normal", "reduction")}
        return cls(**cells)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        return cls.from_dict(loads_json(text))

    # -- identity -----------------------------------------------------------------------
    def canonical(self) -> Genotype:
        return Genotype(normal=self.normal.canonical(), reduction=self.reduction.canonical())

    def canonical_hash(self) -> str:
        """SHA-256 of the canonical JSON: equal for equivalent genotypes."""
        return sha256_of(self.canonical().to_dict())

    # -- DARTS --------------------------------------------------------------------------
    def to_darts(self) -> str:
        """The DARTS `Genotype(...)` string; only for cells whose blocks all add."""
        parts = []
        for name, key, cell in (("normal", "normal", self.normal), ("reduction", "reduce", self.reduction)):
            if any(b.combine != "add" for b in cell.blocks):
                raise GenotypeError(f"{name} cell: DARTS genotypes only add, this cell concatenates")
            pairs = [(op, i) for b in cell.blocks for op, i in zip(b.ops, b.inputs)]
            parts.append(f"{key}={pairs!r}, {key}_concat={list(cell.output_states())!r}")
        return f"Genotype({', '.join(parts)})"

    @classmethod
    def from_darts(cls, text: str) -> Genotype:
        """Parse a DARTS `Genotype(normal=[...], normal_concat=..., reduce=[...], ...)` string."""
        fields = _parse_darts_call(text)
        cells = {}
        for name, key in (("normal", "normal"), ("reduction", "reduce")):
            pairs = fields.get(key)
            if not isinstance(pairs, list) or len(pairs) % 2:
                raise GenotypeError(f"DARTS genotype: {key} must be a list of an even number of (op, input) pairs")
            if not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
                raise GenotypeError(f"DARTS genotype: every entry of {key} must be an (op, input) pair")
            blocks = []
            for k in range(0, len(pairs), 2):
                (op_a, a), (op_b, b) = pairs[k], pairs[k + 1]
                blocks.append(Block(inputs=(a, b), ops=(op_a, op_b), combine="add"))
            concat = fields.get(f"{key}_concat")
            if concat is not None and not isinstance(concat, (list, tuple)):
                raise GenotypeError(f"DARTS genotype: {key}_concat must be a list of node indices")
            cells[name] = Cell(blocks=tuple(blocks), concat=tuple(concat) if concat is not None else None)
        return cls(**cells)


def _cell_from_dict(data: Mapping[str, Any], name: str) -> Cell:
    raw_blocks = data.get(name)
    if not isinstance(raw_blocks, list):
        raise GenotypeError(f"{name} cell: must be a list of blocks")
    if len(raw_blocks) > MAX_BLOCKS:  # before any per-block work: a huge list is refused at once
        raise GenotypeError(f"{name} cell: has {len(raw_blocks)} blocks; a cell has 1..{MAX_BLOCKS}")
    blocks = []
    for k, raw in enumerate(raw_blocks):
        where = f"{name} cell, block {k}"
        if not isinstance(raw, Mapping):
            raise GenotypeError(f"{where}: must be an object with inputs, ops and combine")
        missing = [f for f in ("inputs", "ops") if f not in raw]
        if missing:
            raise GenotypeError(f"{where}: missing field {missing[0]!r}")
        unknown = set(raw) - {"inputs", "ops", "combine"}
        if unknown:
            raise GenotypeError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        for field in ("inputs", "ops"):
            if not isinstance(raw[field], list):
                raise GenotypeError(f"{where}: {field} must be a list of 2")
        blocks.append(Block(inputs=tuple(raw["inputs"]), ops=tuple(raw["ops"]), combine=raw.get("combine", "add")))
    concat = data.get(f"{name}_concat")
    if concat is not None and not isinstance(concat, list):
        raise GenotypeError(f"{name} cell, concat: must be a list of hidden-state indices")
    return Cell(blocks=tuple(blocks), concat=tuple(concat) if concat is not None else None)


def _parse_darts_call(text: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise GenotypeError(f"DARTS genotype: must be a string, got {type(text).__name__}")
    if len(text) > MAX_DARTS_CHARS:
        raise GenotypeError(f"DARTS genotype: {len(text):,} characters is too long; a genotype of at most "
                            f"{MAX_BLOCKS} blocks a cell fits in {MAX_DARTS_CHARS:,}")
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise GenotypeError(f"DARTS genotype: not a Python expression ({exc.msg})") from None
    except (RecursionError, MemoryError):  # "-----...1" or "not not ... 1" thousands deep: the parser's stack overflows
        raise GenotypeError("DARTS genotype: not a Python expression (nested too deeply)") from None
    if not isinstance(call, ast.Call):
        raise GenotypeError("DARTS genotype: expected Genotype(normal=..., reduce=...)")
    fields: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise GenotypeError("DARTS genotype: name every field (normal=..., reduce=...), without **")
        value = kw.value
        indices: range | None = None
        try:
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "range":
                indices = range(*(ast.literal_eval(a) for a in value.args))
            else:
                fields[kw.arg] = ast.literal_eval(value)
        except (ValueError, TypeError):
            raise GenotypeError(f"DARTS genotype: {kw.arg} is not a literal list or range") from None
        if indices is not None:
            fields[kw.arg] = _small_range(kw.arg, indices)
    for key in ("normal", "reduce"):
        if key not in fields:
            raise GenotypeError(f"DARTS genotype: missing {key}=")
    return fields


def _small_range(name: str, indices: range) -> list[int]:
    """The range as a list, refusing one longer than a cell's hidden states (range(10**11) would
    not fit in memory)."""
    most = NUM_CELL_INPUTS + MAX_BLOCKS
    try:
        too_long = len(indices) > most
    except OverflowError:  # longer than sys.maxsize
        too_long = True
    if too_long:
        raise GenotypeError(f"DARTS genotype: {name} = {indices!r} holds more than the {most} hidden states a cell has")
    return list(indices)


def cells_of(genotype: Genotype) -> tuple[tuple[str, Cell], tuple[str, Cell]]:
    """The (name, cell) pairs in drawing and building order."""
    return (("normal", genotype.normal), ("reduction", genotype.reduction))
