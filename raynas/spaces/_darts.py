"""The DARTS cell space (Liu et al., ICLR 2019): a normal and a reduction cell of 4 nodes.

Each intermediate node ``i`` (0-3) of a cell sums two edges. An edge is an ``(op, input)`` pair:
``input`` 0 is ``c_{k-2}``, 1 is ``c_{k-1}`` and ``2 + m`` is intermediate node ``m < i``, so
node ``i`` chooses among ``i + 2`` inputs. The cell outputs the concatenation of nodes 2..5.

The genotype itself (ops, ``Genotype``, :func:`freeze`, the published cells, the notation and
its checks) lives in :mod:`raynas.spaces._darts_genotype`; its names are re-exported here, as is
:class:`~raynas.spaces._darts_nodes.NodeGenotype`, the cells with any number of inputs per node
that SNAS derives (not members of this space, but built by the same network).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from raynas._errors import InvalidArchitectureError, excerpt
from raynas.spaces._base import Space
from raynas.spaces._darts_genotype import (
    _OP_INDEX,
    CELLS,
    CONCAT,
    DARTS,
    DARTS_V1,
    DARTS_V2,
    N_NODES,
    OPS,
    Genotype,
    _check,
    _format,
    _parse_genotype,
    freeze,
)
from raynas.spaces._darts_nodes import NodeGenotype

__all__ = [
    "CELLS",
    "CONCAT",
    "DARTS",
    "DARTS_V1",
    "DARTS_V2",
    "GRAPH_COLUMNS",
    "N_NODES",
    "OPS",
    "DartsSpace",
    "Genotype",
    "NodeGenotype",
    "cost",
    "freeze",
]

#: Vertex-type columns of :meth:`DartsSpace.to_graph`.
GRAPH_COLUMNS = OPS + ("c_{k-2}", "c_{k-1}", "normal_output", "reduce_output")
_FIRST_OP_TOKEN = 2 + N_NODES  # input tokens are 1..5, op tokens 6..13


@lru_cache(maxsize=1 << 16)
def _key(arch: Genotype) -> str:
    _check(arch)
    cells = [
        tuple(p for node in range(N_NODES) for p in sorted(pairs[2 * node : 2 * node + 2]))
        for pairs in (arch[0], arch[2])
    ]
    return _format((cells[0], CONCAT, cells[1], CONCAT))


def cost(arch: Genotype) -> dict[str, float]:
    """Params and FLOPs of the CIFAR-10 evaluation network of ``arch``, as Python ints.

    The network is DARTS's ``NetworkCIFAR`` with the paper's settings (``C = 36``, 20 cells,
    10 classes) without the auxiliary head: 3,349,342 params for ``DARTS_V2``, the paper's
    3.3 M. FLOPs are the conv and linear multiply-adds for one 32x32 image, biases excluded
    (NAS-Bench-Macro's convention). Each new genotype costs a full network build (a few
    tenths of a second on a CPU); results are LRU-cached on the genotype.

    Raises:
        InvalidArchitectureError: ``arch`` is not a valid, immutable genotype.
    """
    from raynas.spaces._cost import measured_cost

    DartsSpace().key(arch)  # validates, and rejects unhashable (list) parts
    return measured_cost("darts", arch)  # type: ignore[return-value]


class DartsSpace(Space):
    """The DARTS CNN space: two cells, 4 nodes each, 2 ``(op, input)`` edges per node.

    Validity: each node's two inputs exist (node ``i`` reads ``0..i+1``) and differ, ops are
    the 8 DARTS primitives, and the concats are ``range(2, 6)``. Unlike the genotypes DARTS
    derives (which skip ``none`` when choosing edges), ``none`` is a legal op here: the edge
    contributes zeros.

    Keys sort the two pairs of every node, so swapping a node's edges keeps the key.
    ``cardinality`` counts encodings, ordered pairs included:
    ``(2*1 * 3*2 * 4*3 * 5*4 * 8**8) ** 2`` (about 2.3e21); there are ``2**8`` times fewer keys.

    Sequences are NAO's DARTS encoding: for each cell, node and edge, an input token
    (``input + 1``, 1..5) then an op token (``6 + op index``, 6..13); 32 tokens. The token
    mask allows at an input position only the inputs its node can read; that the two inputs
    differ is checked by :meth:`from_sequence`.

    Example:
        >>> space = DartsSpace()
        >>> space.from_string(space.to_string(DARTS_V2)) == DARTS_V2
        True
        >>> space.to_sequence(DARTS_V2)[:4]
        [1, 10, 2, 10]
    """

    name = "darts"
    ops = OPS
    cardinality = math.prod(n * (n - 1) * len(OPS) ** 2 for n in range(2, 2 + N_NODES)) ** 2
    seq_length = len(CELLS) * N_NODES * 2 * 2
    vocab_size = _FIRST_OP_TOKEN + len(OPS)

    # --- sampling and neighbourhoods -------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genotype:
        """Uniform over encodings: per node two distinct inputs and two ops."""
        cells = []
        for _ in CELLS:
            pairs = []
            for node in range(N_NODES):
                inputs = rng.choice(node + 2, size=2, replace=False)
                ops = rng.integers(0, len(OPS), size=2)
                pairs.extend((OPS[int(o)], int(i)) for o, i in zip(ops, inputs, strict=True))
            cells.append(tuple(pairs))
        return Genotype(cells[0], CONCAT, cells[1], CONCAT)

    def mutate(self, arch: Genotype, rng: np.random.Generator) -> Genotype:
        """A uniformly drawn neighbour: one edge gets another op or another free input."""
        nbrs = self.neighbors(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    def neighbors(self, arch: Genotype) -> list[Genotype]:
        """Every one-edge edit (136 of them); no two share a key, none shares ``arch``'s."""
        self.validate(arch)
        out = []
        for c in range(len(CELLS)):
            pairs = arch[2 * c]
            for e, (op, inp) in enumerate(pairs):
                other = pairs[e ^ 1][1]
                edits = [(o, inp) for o in OPS if o != op]
                edits += [(op, i) for i in range(e // 2 + 2) if i not in (inp, other)]
                for pair in edits:
                    new = pairs[:e] + (pair,) + pairs[e + 1 :]
                    out.append(arch._replace(**{CELLS[c]: new}))
        return out

    # --- validity and identity ------------------------------------------------------
    def validate(self, arch: Any) -> None:
        _check(arch)

    def key(self, arch: Genotype) -> str:
        """The genotype string with each node's two pairs sorted."""
        try:
            return _key(arch)
        except TypeError:  # unhashable parts (lists)
            self.validate(arch)
            raise InvalidArchitectureError(
                f"a DARTS architecture is immutable, got {arch!r}"
            ) from None

    def cost(self, arch: Genotype) -> dict[str, float]:
        """Params and FLOPs of ``arch``'s CIFAR-10 evaluation network (see :func:`cost`)."""
        return cost(arch)

    # --- encodings --------------------------------------------------------------------
    def to_config(self, arch: Genotype) -> dict[str, Any]:
        self.validate(arch)
        config: dict[str, Any] = {}
        for c, cell in enumerate(CELLS):
            for e, (op, inp) in enumerate(arch[2 * c]):
                config[f"{cell}_n{e // 2}_in{e % 2}"] = int(inp)
                config[f"{cell}_n{e // 2}_op{e % 2}"] = op
        return config

    def from_config(self, config: dict[str, Any]) -> Genotype:
        cells = []
        try:
            for cell in CELLS:
                cells.append(tuple(
                    (str(config[f"{cell}_n{n}_op{j}"]), int(config[f"{cell}_n{n}_in{j}"]))
                    for n in range(N_NODES) for j in range(2)
                ))  # fmt: skip
        except KeyError as exc:
            raise InvalidArchitectureError(f"config lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError):
            raise InvalidArchitectureError(
                f"config inputs must be integers, got {config!r}"
            ) from None
        arch = Genotype(cells[0], CONCAT, cells[1], CONCAT)
        self.validate(arch)
        return arch

    def to_sequence(self, arch: Genotype) -> list[int]:
        self.validate(arch)
        return [
            tok
            for c in range(len(CELLS))
            for op, inp in arch[2 * c]
            for tok in (int(inp) + 1, _FIRST_OP_TOKEN + _OP_INDEX[op])
        ]

    def from_sequence(self, tokens: list[int]) -> Genotype:
        toks = [int(t) for t in tokens]
        mask = self.token_mask()
        if len(toks) != self.seq_length or not all(
            0 <= t < self.vocab_size and mask[p, t] for p, t in enumerate(toks)
        ):
            raise InvalidArchitectureError(
                f"a DARTS sequence is {self.seq_length} tokens, (input, op) per edge: inputs "
                f"1..node+2, ops {_FIRST_OP_TOKEN}..{self.vocab_size - 1}; got {list(tokens)}"
            )
        half = self.seq_length // 2
        cells = [
            tuple(
                (OPS[toks[p + 1] - _FIRST_OP_TOKEN], toks[p] - 1)
                for p in range(start, start + half, 2)
            )
            for start in (0, half)
        ]
        arch = Genotype(cells[0], CONCAT, cells[1], CONCAT)
        self.validate(arch)  # the two inputs of a node must differ
        return arch

    def token_mask(self) -> np.ndarray:
        mask = np.zeros((self.seq_length, self.vocab_size), dtype=bool)
        for p in range(0, self.seq_length, 2):
            node = (p // 4) % N_NODES
            mask[p, 1 : node + 3] = True
            mask[p + 1, _FIRST_OP_TOKEN:] = True
        return mask

    def cell_graph(self, arch: Genotype, cell: str = "normal") -> tuple[np.ndarray, np.ndarray]:
        """One cell with ops on vertices (arch2vec's DARTS graph), 11 vertices.

        Vertices: ``c_{k-2}``, ``c_{k-1}``, the 8 edges (op vertices, in genotype order) and
        the output. An op vertex reading intermediate node ``m`` has edges from both of
        ``m``'s op vertices; every op vertex feeds the output (the concat is nodes 2..5).
        Columns are :data:`GRAPH_COLUMNS`.
        """
        self.validate(arch)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        pairs = arch[2 * CELLS.index(cell)]
        n = 2 + len(pairs) + 1
        adj = np.zeros((n, n), dtype=np.int8)
        ops = np.zeros((n, len(GRAPH_COLUMNS)), dtype=np.int8)
        ops[0, len(OPS)] = ops[1, len(OPS) + 1] = 1
        ops[n - 1, len(OPS) + 2 + CELLS.index(cell)] = 1
        for e, (op, inp) in enumerate(pairs):
            v = 2 + e
            ops[v, _OP_INDEX[op]] = 1
            if inp < 2:
                adj[inp, v] = 1
            else:
                adj[2 + 2 * (inp - 2) : 4 + 2 * (inp - 2), v] = 1
            adj[v, n - 1] = 1
        return adj, ops

    def to_graph(self, arch: Genotype) -> tuple[np.ndarray, np.ndarray]:
        """Both cells as one 22-vertex graph: the normal cell's 11 vertices, then the reduction
        cell's (see :meth:`cell_graph`), with no edges between them; the output vertex types
        tell the cells apart."""
        (a_n, o_n), (a_r, o_r) = self.cell_graph(arch, "normal"), self.cell_graph(arch, "reduce")
        k = len(a_n)
        adj = np.zeros((2 * k, 2 * k), dtype=np.int8)
        adj[:k, :k], adj[k:, k:] = a_n, a_r
        return adj, np.concatenate([o_n, o_r])

    def to_string(self, arch: Genotype) -> str:
        """DARTS's genotype notation, ``Genotype(normal=[('sep_conv_3x3', 0), ...], ...)``."""
        self.validate(arch)
        return _format(arch)

    def from_string(self, text: str) -> Genotype:
        """Parse DARTS's notation without evaluating it (``ast`` literals and ``range`` only)."""
        try:
            parsed = _parse_genotype(text)
        except (SyntaxError, ValueError, TypeError, RecursionError) as exc:
            raise InvalidArchitectureError(
                f"not a DARTS genotype string ({exc}): {excerpt(text, 120)}; expected "
                "\"Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), "
                'reduce=[...], reduce_concat=range(2, 6))"'
            ) from None
        arch = freeze(parsed)
        self.validate(arch)
        return arch

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
