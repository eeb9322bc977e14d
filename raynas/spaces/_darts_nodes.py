"""DARTS cells whose nodes read any number of inputs: the children that SNAS derives.

SNAS (Xie et al., ICLR 2019) keeps the argmax op of each of a cell's 14 edges; where the zero
op wins, the edge is gone, so a node ends up with anywhere from 0 to ``node + 2`` inputs
(Section 3.1, Figure 5: "more edges are dropped, leaving only two"). A :class:`NodeGenotype`
lists, for each of the 4 intermediate nodes of the normal and the reduction cell, its surviving
``(op, input)`` edges, inputs numbered as in :class:`~raynas.spaces._darts.Genotype` (0 is
``c_{k-2}``, 1 is ``c_{k-1}``, ``2 + m`` intermediate node ``m``) and distinct within a node.

The rule for a network built from it (``DartsNetwork``): a node sums its edges, and a node
with no edge outputs zeros; the cell still concatenates all 4 nodes, so the channel counts, and
everything outside the cell, do not depend on which edges survived. A 2-input ``Genotype`` is
the special case of two edges per node (:func:`nodes_of`) and builds the same network.

Its JSON form (``raynas snas`` genotype files, ``raynas train --genotype``) is
``{"normal": [[["sep_conv_3x3", 0], ["skip_connect", 1]], [], ...], "reduce": [...]}``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from raynas._errors import InvalidArchitectureError
from raynas.spaces._darts_genotype import _OP_INDEX, CELLS, N_NODES, OPS, Genotype

Edges = tuple[tuple[str, int], ...]


class NodeGenotype(NamedTuple):
    """Per cell (``normal``, ``reduce``), per intermediate node, its ``(op, input)`` edges."""

    normal: tuple[Edges, ...]
    reduce: tuple[Edges, ...]

    def to_json(self) -> dict[str, list[list[list[Any]]]]:
        """The JSON form: lists of ``[op, input]`` per node."""
        return {
            cell: [[[op, int(i)] for op, i in node] for node in getattr(self, cell)]
            for cell in CELLS
        }

    def __repr__(self) -> str:
        cells = ", ".join(
            f"{cell}=[{', '.join(repr(list(node)) for node in getattr(self, cell))}]"
            for cell in CELLS
        )
        return f"NodeGenotype({cells})"


def check_nodes(arch: Any) -> None:
    """Raise :class:`InvalidArchitectureError` (one line) unless ``arch`` is a valid NodeGenotype."""
    if not isinstance(arch, NodeGenotype):
        raise InvalidArchitectureError(f"not a NodeGenotype(normal, reduce): {arch!r}")
    for cell in CELLS:
        nodes = getattr(arch, cell)
        if not isinstance(nodes, tuple) or len(nodes) != N_NODES:
            raise InvalidArchitectureError(
                f"{cell} must list the edges of each of its {N_NODES} nodes, got {nodes!r}"
            )
        for n, node in enumerate(nodes):
            if not isinstance(node, tuple):
                raise InvalidArchitectureError(f"{cell} node {n} must be a tuple of (op, input) edges")
            seen = set()
            for edge in node:
                if not isinstance(edge, tuple) or len(edge) != 2:
                    raise InvalidArchitectureError(
                        f"{cell} node {n}: an edge is an (op, input) pair, got {edge!r}"
                    )
                op, inp = edge
                if op not in _OP_INDEX:
                    raise InvalidArchitectureError(
                        f"{cell} node {n}: unknown op {op!r}; DARTS ops are {', '.join(OPS)}"
                    )
                if not isinstance(inp, int) or isinstance(inp, bool) or not 0 <= inp < n + 2:
                    raise InvalidArchitectureError(
                        f"{cell} node {n}: input {inp!r} does not exist; node {n} reads one of "
                        f"0..{n + 1} (0 = c_{{k-2}}, 1 = c_{{k-1}}, 2+m = intermediate node m)"
                    )
                if inp in seen:
                    raise InvalidArchitectureError(
                        f"{cell} node {n}: input {inp} appears twice; a node has one edge per input"
                    )
                seen.add(inp)


def nodes_of(genotype: Genotype | NodeGenotype) -> NodeGenotype:
    """``genotype`` as a :class:`NodeGenotype` (a 2-input Genotype: its pairs, two per node)."""
    if isinstance(genotype, NodeGenotype):
        return genotype
    cells = [
        tuple(tuple(genotype[2 * c][2 * n : 2 * n + 2]) for n in range(N_NODES))
        for c in range(len(CELLS))
    ]
    return NodeGenotype(*cells)


def nodes_from_json(data: Any) -> NodeGenotype:
    """Parse (and check) the JSON form; errors name the first thing wrong, in one line."""
    if not isinstance(data, dict) or set(data) != set(CELLS):
        raise InvalidArchitectureError(
            'a DARTS node genotype is {"normal": [...4 nodes...], "reduce": [...]}, '
            f"got {str(data)[:120]}"
        )
    cells = []
    for cell in CELLS:
        nodes = data[cell]
        if not isinstance(nodes, list):
            raise InvalidArchitectureError(f"{cell} must be a list of {N_NODES} nodes")
        try:
            cells.append(tuple(
                tuple((edge[0], edge[1]) if isinstance(edge, list) and len(edge) == 2 else edge
                      for edge in node)
                for node in nodes
            ))  # fmt: skip
        except TypeError:
            raise InvalidArchitectureError(
                f"{cell}: each node is a list of [op, input] edges, got {str(nodes)[:120]}"
            ) from None
    arch = NodeGenotype(*cells)
    check_nodes(arch)
    return arch
