"""NAS-Bench-101 (Ying et al., ICML 2019): a DAG cell of at most 7 vertices and 9 edges.

A cell is an upper-triangular adjacency matrix plus one op per vertex (``input`` first,
``output`` last, interior ops from :data:`OPS`). Vertices that lie on no input-to-output path
are pruned, exactly as the official ``ModelSpec`` does, and cells are identified by the
official module hash (an iterated md5 of in/out degrees and labels), so isomorphic encodings
share a key.

Several encodings need a fixed 7-vertex layout. A pruned cell with ``V < 7`` vertices is
*padded* by inserting ``7 - V`` edge-less vertices just before the output (the output moves to
index 6); padded vertices carry the op ``conv3x3-bn-relu`` where an op is needed. Pruning a
padded cell gives back the original cell.

:meth:`~NASBench101Space.mutate` and :meth:`~NASBench101Space.neighbors` edit a *hanging*
variant of that layout, where each padded vertex also has an edge from the input (still
pruned, as it reaches no output). Like the dangling vertices of the official unpruned specs,
it lets one edge flip (padded vertex -> output) grow the cell by a vertex.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np

from raynas._errors import InvalidArchitectureError, check_positive, excerpt
from raynas.spaces._base import Space
from raynas.spaces._nb101_cell import (
    _EDGES,
    _OP_TOKEN,
    _TOKEN_OP,
    GRAPH_OPS,
    INPUT,
    MAX_VERTICES,
    OPS,
    OUTPUT,
    Cell101,
    _build,
    _checked,
    _columns,
    _key,
    _pad,
    _remember,
)

#: Tokens of the NAO/SemiNAS encoding: (V + 2)(V - 1) / 2 for the 7-vertex cell.
SEQ_LENGTH = (MAX_VERTICES + 2) * (MAX_VERTICES - 1) // 2


class NASBench101Space(Space):
    """The NAS-Bench-101 cell space (423,624 unique cells).

    An architecture is a :class:`Cell101`; :meth:`from_spec` builds a pruned one.

    Args:
        mutation_rate: Expected number of edge flips per vertex and op changes per interior
            vertex in :meth:`mutate` (1.0 in the official regularized-evolution example).

    Example:
        >>> space = NASBench101Space()
        >>> cell = space.from_spec([[0, 1, 1], [0, 0, 1], [0, 0, 0]],
        ...                        ["input", "conv3x3-bn-relu", "output"])
        >>> space.to_sequence(cell)[:5]
        [2, 4, 2, 2, 6]
    """

    name = "nasbench101"
    ops = OPS
    cardinality = 423_624  # unique cells up to isomorphism (Ying et al., 2019)
    n_classes = 423_624
    seq_length = SEQ_LENGTH
    vocab_size = 7

    def __init__(self, mutation_rate: float = 1.0):
        check_positive("mutation_rate", mutation_rate)
        self.mutation_rate = float(mutation_rate)

    @property
    def options(self) -> dict[str, float]:
        return {"mutation_rate": self.mutation_rate}

    # --- construction -----------------------------------------------------------------
    def from_spec(self, matrix: Any, ops: Any) -> Cell101:
        """Build a pruned cell from an adjacency matrix and op names.

        Raises:
            InvalidArchitectureError: cycle or non-upper-triangular matrix, unknown op, bad
                input/output ops, disconnected output, or over 7 vertices / 9 edges after
                pruning (the official ``is_valid`` rules).
        """
        if isinstance(matrix, np.ndarray):
            matrix = matrix.tolist()
        cell = _build(matrix, ops)
        if isinstance(cell, str):
            raise InvalidArchitectureError(f"invalid NAS-Bench-101 cell: {cell}")
        return _remember(cell, cell)  # type: ignore[return-value]

    def prune(self, arch: Cell101) -> Cell101:
        """``arch`` without vertices off every input-to-output path (validates)."""
        self.validate(arch)
        return _checked(arch)  # type: ignore[return-value]

    # --- sampling and neighbourhoods ----------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Cell101:
        """The official random spec: a random upper-triangular 7x7 matrix and random ops."""
        while True:
            mat = np.triu(rng.integers(0, 2, size=(MAX_VERTICES, MAX_VERTICES)), 1).tolist()
            ops = [INPUT] + [OPS[i] for i in rng.integers(0, len(OPS), size=5)] + [OUTPUT]
            cell = _build(mat, ops)
            if not isinstance(cell, str):
                return _remember(cell, cell)  # type: ignore[return-value]

    def mutate(self, arch: Cell101, rng: np.random.Generator) -> Cell101:
        """The official regularized-evolution mutation, retried until valid and different.

        On the hanging padded 7-vertex layout (see the module docstring) each of the 21
        possible edges flips with probability ``mutation_rate / 7`` and each interior op
        changes with probability ``mutation_rate / 5``; padded vertices first get random ops,
        so a mutation can grow the cell as the official unpruned specs can.
        """
        own = self.key(arch)
        base_mat, base_ops = _pad(_checked(arch), hang=True)  # type: ignore[arg-type]
        n_live = len(_checked(arch).ops)  # type: ignore[union-attr]
        edge_p = self.mutation_rate / MAX_VERTICES
        op_p = self.mutation_rate / (MAX_VERTICES - 2)
        while True:
            mat = [row[:] for row in base_mat]
            ops = base_ops[:]
            for v in range(n_live - 1, MAX_VERTICES - 1):
                ops[v] = OPS[int(rng.integers(len(OPS)))]
            flips = rng.random(len(_EDGES)) < edge_p
            for (i, j), flip in zip(_EDGES, flips, strict=True):
                if flip:
                    mat[i][j] = 1 - mat[i][j]
            changes = rng.random(MAX_VERTICES - 2) < op_p
            picks = rng.integers(0, len(OPS) - 1, size=MAX_VERTICES - 2)
            for v in range(1, MAX_VERTICES - 1):
                if changes[v - 1]:
                    ops[v] = [o for o in OPS if o != ops[v]][int(picks[v - 1])]
            cell = _build(mat, ops)
            if not isinstance(cell, str) and _key(_remember(cell, cell)) != own:  # type: ignore[arg-type]
                return cell

    def neighbors(self, arch: Cell101) -> list[Cell101]:
        """Valid cells one edge flip or one op change away on the hanging padded layout.

        Edge flips come first (row-major), then op changes (by vertex, then in ``OPS`` order).
        Neighbours are deduplicated by key and exclude ``arch``'s own key. A flip from a
        padded vertex to the output inserts a vertex fed by the input (padded vertices carry
        the ops in turn), so every cell, even ``input -> output``, has neighbours.
        """
        own = self.key(arch)
        base_mat, base_ops = _pad(_checked(arch), hang=True)  # type: ignore[arg-type]
        cands: list[tuple[list[list[int]], list[str]]] = []
        for i, j in _EDGES:
            mat = [row[:] for row in base_mat]
            mat[i][j] = 1 - mat[i][j]
            cands.append((mat, base_ops))
        for v in range(1, MAX_VERTICES - 1):
            for op in OPS:
                if op != base_ops[v]:
                    cands.append((base_mat, base_ops[:v] + [op] + base_ops[v + 1 :]))
        seen = {own}
        out = []
        for mat, ops in cands:
            cell = _build(mat, ops)
            if isinstance(cell, str):
                continue
            key = _key(_remember(cell, cell))  # type: ignore[arg-type]
            if key not in seen:
                seen.add(key)
                out.append(cell)
        return out

    # --- validity and identity ------------------------------------------------------------
    def validate(self, arch: Any) -> None:
        if not isinstance(arch, Cell101):
            raise InvalidArchitectureError(
                f"a NAS-Bench-101 architecture is a Cell101 (use NASBench101Space.from_spec), got {arch!r}"
            )
        try:
            result = _checked(arch)
        except TypeError:  # unhashable fields, e.g. lists
            result = _build(arch.matrix, arch.ops)
            if not isinstance(result, str):
                result = "Cell101 fields must be tuples (build cells with from_spec)"
        if isinstance(result, str):
            raise InvalidArchitectureError(f"invalid NAS-Bench-101 cell: {result}")

    def key(self, arch: Cell101) -> str:
        """The official NAS-Bench-101 module hash (32 hex digits) of the pruned cell."""
        if type(arch) is not Cell101:
            self.validate(arch)
        try:
            return _key(arch)
        except TypeError:
            self.validate(arch)
            raise

    # --- encodings ------------------------------------------------------------------------
    def to_config(self, arch: Cell101) -> dict[str, Any]:
        """``edge_i_j`` (0/1, ``i < j < 7``) and ``op_1..op_5`` of the padded 7-vertex layout."""
        self.validate(arch)
        mat, ops = _pad(_checked(arch))  # type: ignore[arg-type]
        config: dict[str, Any] = {f"edge_{i}_{j}": mat[i][j] for i, j in _EDGES}
        config.update({f"op_{v}": ops[v] for v in range(1, MAX_VERTICES - 1)})
        return config

    def from_config(self, config: dict[str, Any]) -> Cell101:
        try:
            mat = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
            for i, j in _EDGES:
                mat[i][j] = int(config[f"edge_{i}_{j}"])
            ops = [INPUT] + [config[f"op_{v}"] for v in range(1, MAX_VERTICES - 1)] + [OUTPUT]
        except KeyError as exc:
            raise InvalidArchitectureError(f"config lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InvalidArchitectureError(f"bad NAS-Bench-101 config value: {exc}") from None
        return self.from_spec(mat, ops)

    def to_sequence(self, arch: Cell101) -> list[int]:
        """The 27-token NAO/SemiNAS encoding of the pruned cell.

        For each column ``c = 1 .. V-1`` of the ``V``-vertex pruned cell: ``matrix[r][c] + 1``
        for every row ``r < c``, then the op token of vertex ``c`` (3 conv1x1, 4 conv3x3,
        5 maxpool, 6 output). A cell with ``V < 7`` vertices thus ends with the output token
        after ``(V + 2)(V - 1) / 2`` tokens and is padded with zeros to 27.
        """
        self.validate(arch)
        return list(_tokens(_checked(arch)))  # type: ignore[arg-type]

    def from_sequence(self, tokens: list[int]) -> Cell101:
        """Inverse of :meth:`to_sequence`.

        Columns are read until the output token 6; every later token must be the pad 0. An
        unpruned encoding (e.g. a full 7-vertex sequence with dangling vertices) is accepted
        and pruned, so ``to_sequence(from_sequence(s)) == s`` holds for pruned cells only.
        """
        try:
            toks = [int(t) for t in tokens]
        except (TypeError, ValueError):
            raise InvalidArchitectureError(f"tokens must be integers, got {tokens!r}") from None
        if len(toks) != self.seq_length:
            raise InvalidArchitectureError(
                f"a NAS-Bench-101 sequence has {self.seq_length} tokens, got {len(toks)}"
            )
        edges: dict[tuple[int, int], int] = {}
        ops = [INPUT]
        end = None
        for c, start in enumerate(_columns(MAX_VERTICES - 1), start=1):
            for r in range(c):
                t = toks[start + r]
                if t not in (1, 2):
                    raise InvalidArchitectureError(
                        f"token {t} at position {start + r} (edge {r}->{c}) must be 1 (no edge) or 2 (edge)"
                    )
                edges[(r, c)] = t - 1
            t = toks[start + c]
            if t not in _TOKEN_OP:
                raise InvalidArchitectureError(
                    f"token {t} at position {start + c} (op of vertex {c}) must be 3, 4, 5 or 6 (output)"
                )
            ops.append(_TOKEN_OP[t])
            if t == 6:
                end = start + c + 1
                break
        if end is None:
            raise InvalidArchitectureError("sequence has no output token (6) in its op positions")
        if any(toks[end:]):
            raise InvalidArchitectureError(
                f"tokens after the output token (position {end - 1}) must all be the pad 0, got {toks[end:]}"
            )
        n = len(ops)
        mat = [[edges.get((i, j), 0) for j in range(n)] for i in range(n)]
        return self.from_spec(mat, ops)

    def to_full_sequence(self, arch: Cell101) -> list[int]:
        """Tokens of the padded 7-vertex layout: no pad 0 and no early output token.

        :meth:`from_sequence` maps it back to ``arch`` (the padded vertices are pruned). Use it
        where every position must hold a real token, e.g. for a sampler that never stops early.
        """
        self.validate(arch)
        return list(_full_tokens(_checked(arch)))  # type: ignore[arg-type]

    def token_mask(self) -> np.ndarray:
        """Allowed tokens per position: every non-pad token :meth:`to_sequence` can write there.

        Edge positions allow {1, 2}; op positions allow {3, 4, 5, 6} in columns 1-5 (a cell
        with fewer than 7 vertices ends with the output 6 there) and only 6 in column 6. The
        pad 0 is never allowed. A per-position mask cannot say "after an output token only
        pads follow", so a sampler drawing positions independently must stop at the first 6
        and pad the rest; otherwise :meth:`from_sequence` rejects the sequence.
        """
        mask = np.zeros((self.seq_length, self.vocab_size), dtype=bool)
        for c, start in enumerate(_columns(MAX_VERTICES - 1), start=1):
            mask[start : start + c, 1:3] = True
            mask[start + c, 6] = True
            if c < MAX_VERTICES - 1:
                mask[start + c, 3:6] = True
        return mask

    def to_graph(self, arch: Cell101) -> tuple[np.ndarray, np.ndarray]:
        """Padded 7x7 adjacency and one-hot ops over ``GRAPH_OPS``.

        Uses the padded layout (output at index 6); padded vertices have no edges and an
        all-zero op row.
        """
        self.validate(arch)
        cell: Cell101 = _checked(arch)  # type: ignore[assignment]
        n = len(cell.ops)
        mat, ops = _pad(cell)
        onehot = np.zeros((MAX_VERTICES, len(GRAPH_OPS)), dtype=np.int8)
        for v, op in enumerate(ops):
            if not (n - 1 <= v < MAX_VERTICES - 1):
                onehot[v, GRAPH_OPS.index(op)] = 1
        return np.array(mat, dtype=np.int8), onehot

    def to_string(self, arch: Cell101) -> str:
        """JSON ``{"matrix": [[...]], "ops": [...]}`` of the pruned cell."""
        self.validate(arch)
        cell: Cell101 = _checked(arch)  # type: ignore[assignment]
        return json.dumps({"matrix": [list(r) for r in cell.matrix], "ops": list(cell.ops)})

    def from_string(self, text: str) -> Cell101:
        try:
            spec = json.loads(text)
            matrix, ops = spec["matrix"], spec["ops"]
        except (json.JSONDecodeError, TypeError, KeyError):
            raise InvalidArchitectureError(
                f"not a NAS-Bench-101 cell string: {excerpt(text, 120)}; expected JSON "
                '{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}'
            ) from None
        return self.from_spec(matrix, ops)

    # --- cost model -----------------------------------------------------------------------
    def cost(self, arch: Cell101) -> dict[str, float]:
        """Params and FLOPs of the CIFAR-10 network of ``arch``, as Python ints.

        The network is the benchmark's (stem 128 channels, 3 stacks of 3 cells, 10 classes);
        ``params`` equals the benchmark's ``trainable_parameters``. FLOPs are the conv and
        linear multiply-adds for one 32x32 image, biases excluded (NAS-Bench-Macro's
        convention; the benchmark publishes no FLOPs). Each new pruned cell costs a full
        network build (tens of milliseconds); results are LRU-cached on the pruned cell, so
        isomorphic encodings with a different vertex order are measured apart (the channel
        split can give them different counts).
        """
        from raynas.spaces._cost import measured_cost

        return measured_cost(self.name, self.prune(arch))  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"NASBench101Space(mutation_rate={self.mutation_rate})"


@lru_cache(maxsize=1 << 16)
def _tokens(cell: Cell101) -> tuple[int, ...]:
    """:meth:`NASBench101Space.to_sequence` of a checked (pruned) cell, padded to 27 tokens
    (cached: controllers deduplicate the same candidates by sequence every round)."""
    seq: list[int] = []
    for c in range(1, len(cell.ops)):
        seq.extend(cell.matrix[r][c] + 1 for r in range(c))
        seq.append(_OP_TOKEN[cell.ops[c]])
    return tuple(seq + [0] * (SEQ_LENGTH - len(seq)))


@lru_cache(maxsize=1 << 16)
def _full_tokens(cell: Cell101) -> tuple[int, ...]:
    """:meth:`NASBench101Space.to_full_sequence` of a checked cell (cached: controllers encode
    the same cells every round)."""
    mat, ops = _pad(cell)
    seq: list[int] = []
    for c in range(1, MAX_VERTICES):
        seq.extend(mat[r][c] + 1 for r in range(c))
        seq.append(_OP_TOKEN[ops[c]])
    return tuple(seq)
