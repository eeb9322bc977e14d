"""NAS-Bench-101 cells as plain data: building, pruning and the official module hash.

The space class in :mod:`raynas.spaces._nasbench101` builds on these helpers; they hold no
state beyond bounded caches of already checked cells.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from raynas._errors import InvalidArchitectureError

INPUT, OUTPUT = "input", "output"
#: Interior ops in the official label order (the module hash labels them 0, 1, 2).
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
#: Op used for the edge-less vertices of a padded 7-vertex layout.
PAD_OP = OPS[0]
_LABEL = {INPUT: -1, OUTPUT: -2, **{op: i for i, op in enumerate(OPS)}}
#: NAO/SemiNAS tokens: 0 pad, 1 no edge, 2 edge, 3 conv1x1, 4 conv3x3, 5 maxpool, 6 output.
_OP_TOKEN = {"conv1x1-bn-relu": 3, "conv3x3-bn-relu": 4, "maxpool3x3": 5, OUTPUT: 6}
_TOKEN_OP = {t: op for op, t in _OP_TOKEN.items()}
#: One-hot columns of :meth:`NASBench101Space.to_graph`.
GRAPH_OPS = (INPUT, "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", OUTPUT)
_EDGES = tuple((i, j) for i in range(MAX_VERTICES) for j in range(i + 1, MAX_VERTICES))
_md5 = hashlib.md5
# md5 of str((out_degree, in_degree, label)) for every possible vertex: the hash's first round.
_INIT = {
    (o, i, lab): _md5(str((o, i, lab)).encode()).hexdigest()
    for o in range(MAX_VERTICES * 2)
    for i in range(MAX_VERTICES * 2)
    for lab in (-2, -1, 0, 1, 2)
}

Matrix = tuple[tuple[int, ...], ...]
_INTERN: dict[tuple, tuple] = {}  # at most 2^7 rows per length and 3^5 op tuples per length


@dataclass(frozen=True, slots=True)
class Cell101:
    """A NAS-Bench-101 cell: ``matrix[i][j] == 1`` for an edge ``i -> j``; ops per vertex."""

    matrix: Matrix
    ops: tuple[str, ...]


def module_hash(matrix: Matrix, ops: tuple[str, ...]) -> str:
    """The official NAS-Bench-101 hash (``graph_util.hash_module``) of a *pruned* cell.

    Each vertex starts as ``md5(str((out_degree, in_degree, label)))``; ``V`` times every vertex
    becomes ``md5(sorted in-neighbour hashes | sorted out-neighbour hashes | own hash)``; the
    fingerprint is ``md5(str(sorted(hashes)))``.
    """
    return _wl_hash(matrix, [_LABEL[op] for op in ops], _INIT.__getitem__)


def graph_hash(matrix: Any, labels: list) -> str:
    """``graph_util.hash_module`` of any labelled DAG (labels: anything whose ``str`` is stable,
    e.g. the one-hot op rows that arch2vec's published code passes); isomorphic graphs agree."""
    return _wl_hash(matrix, list(labels), lambda key: _md5(str(key).encode()).hexdigest())


def _wl_hash(matrix: Any, labels: list, first: Callable[[tuple], str]) -> str:
    """The hash's rounds; ``first((out_degree, in_degree, label))`` is a vertex's starting hash."""
    vs = range(len(labels))
    ins = [[w for w in vs if matrix[w][v]] for v in vs]
    outs = [[w for w in vs if matrix[v][w]] for v in vs]
    h = [first((len(outs[v]), len(ins[v]), labels[v])) for v in vs]
    plan = list(zip(vs, ins, outs, strict=True))
    join = "".join
    for _ in vs:
        g = h.__getitem__
        h = [
            _md5(f"{join(sorted(map(g, i)))}|{join(sorted(map(g, o)))}|{h[v]}".encode()).hexdigest()
            for v, i, o in plan
        ]
    return _md5(str(sorted(h)).encode()).hexdigest()


def _has_cycle(matrix: Matrix) -> bool:
    n = len(matrix)
    state = [0] * n  # 0 new, 1 on stack, 2 done

    def visit(v: int) -> bool:
        state[v] = 1
        for w in range(n):
            if matrix[v][w] and (state[w] == 1 or (state[w] == 0 and visit(w))):
                return True
        state[v] = 2
        return False

    return any(state[v] == 0 and visit(v) for v in range(n))


def _build(matrix: Any, ops: Any) -> Cell101 | str:
    """Check and prune a spec; returns the pruned cell, or the reason it is invalid."""
    try:
        ops = tuple(ops)
        mat = tuple(tuple(int(x) for x in row) for row in matrix)
    except (TypeError, ValueError):
        return f"matrix must be a square 0/1 matrix and ops a list of op names, got {matrix!r}, {ops!r}"
    n = len(ops)
    if len(mat) != n or any(len(row) != n for row in mat):
        return (
            f"matrix must be {n}x{n} to match {n} ops, got {[len(r) for r in mat]} columns per row"
        )
    if n < 2:
        return f"a cell needs at least an input and an output vertex, got ops {list(ops)}"
    if any(x not in (0, 1) for row in mat for x in row):
        return "matrix entries must be 0 or 1"
    lower = [(i, j) for i in range(n) for j in range(i + 1) if mat[i][j]]
    if lower:
        i, j = lower[0]
        if _has_cycle(mat):
            return f"the graph has a cycle (through edge {i}->{j}); NAS-Bench-101 cells are DAGs"
        return (
            f"matrix is not strictly upper-triangular (edge {i}->{j}); order the vertices "
            "topologically so that every edge goes from a lower to a higher index"
        )
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        return f"the first op must be 'input' and the last 'output', got {ops[0]!r} and {ops[-1]!r}"
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            return f"unknown op {op!r} at vertex {v}; interior ops are {', '.join(OPS)}"
    fwd, stack = {0}, [0]
    while stack:
        t = stack.pop()
        for v in range(t + 1, n):
            if mat[t][v] and v not in fwd:
                fwd.add(v)
                stack.append(v)
    if n - 1 not in fwd:
        return "the output is not reachable from the input (disconnected graph)"
    bwd, stack = {n - 1}, [n - 1]
    while stack:
        t = stack.pop()
        for v in range(t):
            if mat[v][t] and v not in bwd:
                bwd.add(v)
                stack.append(v)
    keep = sorted(fwd & bwd)
    if len(keep) < n:
        mat = tuple(tuple(mat[i][j] for j in keep) for i in keep)
        ops = tuple(ops[i] for i in keep)
    # Share row and op tuples between cells: a cached cell then costs ~0.2 kB, not ~1 kB.
    mat = tuple([_INTERN.setdefault(row, row) for row in mat])
    ops = _INTERN.setdefault(ops, ops)
    if len(ops) > MAX_VERTICES:
        return f"{len(ops)} vertices after pruning; NAS-Bench-101 allows at most {MAX_VERTICES} vertices"
    edges = sum(map(sum, mat))
    if edges > MAX_EDGES:
        return f"{edges} edges after pruning; NAS-Bench-101 allows at most {MAX_EDGES} edges"
    return Cell101(mat, ops)


_PRUNED: dict[Cell101, Cell101 | str] = {}  # cell -> pruned cell, or why it is invalid
_PRUNED_MAX = 1 << 18


def _checked(cell: Cell101) -> Cell101 | str:
    """Memoised :func:`_build` of a cell (raises ``TypeError`` for unhashable fields)."""
    out = _PRUNED.get(cell)
    if out is None:
        out = _remember(cell, _build(cell.matrix, cell.ops))
    return out


def _remember(cell: Cell101, out: Cell101 | str) -> Cell101 | str:
    if len(_PRUNED) >= _PRUNED_MAX:
        _PRUNED.clear()
    _PRUNED[cell] = out
    if isinstance(out, Cell101) and out is not cell:
        _PRUNED[out] = out  # a pruned cell is its own pruned form
    return out


def _clear_caches() -> None:
    """Forget memoised pruning and keys (for benchmarks)."""
    _PRUNED.clear()
    _key.cache_clear()


@lru_cache(maxsize=1 << 18)
def _key(cell: Cell101) -> str:
    pruned = _checked(cell)
    if isinstance(pruned, str):
        raise InvalidArchitectureError(f"invalid NAS-Bench-101 cell: {pruned}")
    return module_hash(pruned.matrix, pruned.ops)


def _pad(cell: Cell101, hang: bool = False) -> tuple[list[list[int]], list[str]]:
    """7x7 layout of a pruned cell: padded vertices inserted before the output.

    Padded vertices have no edges and op ``PAD_OP``; with ``hang`` they get an edge from the
    input and the ops ``OPS`` in turn (so that activating different ones inserts different ops).
    """
    n = len(cell.ops)
    pos = list(range(n - 1)) + [MAX_VERTICES - 1]  # where each vertex goes
    mat = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
    for i in range(n):
        for j in range(n):
            if cell.matrix[i][j]:
                mat[pos[i]][pos[j]] = 1
    pads = range(n - 1, MAX_VERTICES - 1)
    ops = list(cell.ops[:-1]) + [PAD_OP] * len(pads) + [OUTPUT]
    if hang:
        for k, p in enumerate(pads):
            mat[0][p] = 1
            ops[p] = OPS[k % len(OPS)]
    return mat, ops


def _columns(n: int) -> list[int]:
    """Start of column ``c`` (1-based) in the token sequence: ``(c - 1) (c + 2) / 2``."""
    return [(c - 1) * (c + 2) // 2 for c in range(1, n + 1)]
