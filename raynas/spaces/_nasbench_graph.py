"""NAS-Bench-Graph (Qin et al., NeurIPS 2022 Datasets and Benchmarks): a 4-node GNN DAG.

An architecture wires four GNN layers ("op nodes"). ``link[i]`` names the input of op node
``i``: ``0`` is the input graph's features and ``j`` (1-4) is the output of op node ``j``. The
benchmark keeps 9 link patterns (every other wiring is isomorphic to one of them) and 9 ops per
node, or 5 on the ``proteins`` dataset. Op nodes whose output nothing reads feed the output.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cache
from typing import Any, NamedTuple

import numpy as np

from raynas._errors import InvalidArchitectureError, UnknownNameError, excerpt
from raynas.spaces._base import Space

# The package's `link_list`, `gnn_list` and `gnn_list_proteins` (nas_bench_graph/architecture.py);
# tests check that they still agree.
LINKS: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (0, 0, 1, 1),
    (0, 0, 1, 2),
    (0, 0, 1, 3),
    (0, 1, 1, 1),
    (0, 1, 1, 2),
    (0, 1, 2, 2),
    (0, 1, 2, 3),
)
OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
PROTEINS_OPS = ("gcn", "sage", "arma", "fc", "skip")
OP_SETS = {"default": OPS, "proteins": PROTEINS_OPS}
N_NODES = 4

_LINK_INDEX = {lk: i for i, lk in enumerate(LINKS)}
_ALL_SKIP = ("skip",) * N_NODES


class GraphArch(NamedTuple):
    """A NAS-Bench-Graph architecture: the input of each op node and its op.

    A plain nested tuple ``((0, 0, 1, 2), ("gcn", "gat", "skip", "sage"))`` compares and hashes
    equal, so either form can be queried.
    """

    link: tuple[int, int, int, int]
    ops: tuple[str, str, str, str]


def _check(arch: Any, ops: tuple[str, ...]) -> None:
    if not isinstance(arch, tuple) or len(arch) != 2:
        raise InvalidArchitectureError(
            "a NAS-Bench-Graph architecture is (link, ops): a tuple of 4 ints and a tuple of 4 "
            f"op names, got {arch!r}"
        )
    link, names = arch
    try:
        known = isinstance(link, tuple) and link in _LINK_INDEX
    except TypeError:  # unhashable items
        known = False
    if not known:
        raise InvalidArchitectureError(
            f"link {link!r} is not one of the 9 NAS-Bench-Graph link patterns "
            f"{', '.join(map(str, LINKS))}; link[i] is the input of op node i (0 = the input "
            "features, j = op node j), and every other wiring is isomorphic to one of these"
        )
    if not isinstance(names, tuple) or len(names) != N_NODES:
        raise InvalidArchitectureError(f"ops must be a tuple of {N_NODES} op names, got {names!r}")
    for i, op in enumerate(names):
        if op not in ops:
            extra = " (it is not in the proteins op set)" if op in OPS else ""
            raise InvalidArchitectureError(
                f"unknown op {op!r} at node {i}{extra}; ops are {', '.join(ops)}"
            )
    if names == _ALL_SKIP:
        raise InvalidArchitectureError(
            "all four ops are 'skip': the network would have no GNN layer, and NAS-Bench-Graph "
            "excludes it"
        )


@cache
def _key(op_set: str, arch: GraphArch) -> str:
    """Validated ``str(valid_hash)``; cached because the package's hash takes microseconds."""
    _check(arch, OP_SETS[op_set])
    return str(package_arch(arch).valid_hash())


def package_arch(arch: GraphArch) -> Any:
    """The package's ``nas_bench_graph.Arch`` of ``arch`` (mutable lists, as it expects)."""
    try:
        from nas_bench_graph import Arch
    except ImportError as exc:  # a declared dependency, but say what to do if it is missing
        raise ImportError(
            "the NAS-Bench-Graph space needs the package nas-bench-graph: "
            "pip install nas-bench-graph"
        ) from exc
    return Arch(list(arch[0]), list(arch[1]))


class NASBenchGraphSpace(Space):
    """The NAS-Bench-Graph space: 9 link patterns x 9 ops per node (5 with ``ops="proteins"``).

    Validity: the link must be one of :data:`LINKS`, each op one of the op set, and not all
    four ops may be ``skip`` (the package's ``all_archs()`` leaves that network out: it has no
    GNN layer). ``cardinality`` counts the valid encodings, ``9 * 9**4 - 9 = 59,040`` (5,616
    for proteins); they fall into 26,206 (2,021) isomorphism classes.

    Keys are ``str(nas_bench_graph.Arch(link, ops).valid_hash())``, the benchmark's own row
    index, so isomorphic architectures share a key. The proteins benchmark is keyed by the
    same ``valid_hash`` (ops numbered as in the 9-op list), not by ``hash_arch(use_proteins=True)``.

    Sequences have 5 tokens: the link pattern (``1..9``, index into :data:`LINKS` plus one),
    then one op token per node (``10..9+n_ops``, index into ``self.ops`` plus 10).

    Args:
        ops: ``"default"`` (the 9 ops of ``gnn_list``) or ``"proteins"`` (``gnn_list_proteins``).

    Example:
        >>> space = NASBenchGraphSpace()
        >>> arch = space.from_string("link=0,0,1,2;ops=gcn,gat,skip,sage")
        >>> space.to_sequence(arch)
        [4, 11, 10, 18, 14]
    """

    name = "nasbench_graph"
    seq_length = 1 + N_NODES

    def __init__(self, ops: str = "default"):
        if ops not in OP_SETS:
            raise UnknownNameError("op set of nasbench_graph", ops, OP_SETS)
        self.op_set = ops
        self.ops: tuple[str, ...] = OP_SETS[ops]
        self._op_index = {op: i for i, op in enumerate(self.ops)}
        self.cardinality = len(LINKS) * len(self.ops) ** N_NODES - len(LINKS)
        self.vocab_size = 1 + len(LINKS) + len(self.ops)
        # Isomorphism classes (distinct valid_hash values), as tabulated by the package.
        self.n_classes = 26206 if ops == "default" else 2021

    @property
    def options(self) -> dict[str, str]:
        return {"ops": self.op_set}

    # --- sampling and neighbourhoods -------------------------------------------------
    def sample(self, rng: np.random.Generator) -> GraphArch:
        """Uniform over valid encodings (all-skip draws are redrawn)."""
        while True:
            link = LINKS[int(rng.integers(len(LINKS)))]
            names = tuple(self.ops[int(i)] for i in rng.integers(0, len(self.ops), size=N_NODES))
            if names != _ALL_SKIP:
                return GraphArch(link, names)  # type: ignore[arg-type]

    def mutate(self, arch: GraphArch, rng: np.random.Generator) -> GraphArch:
        """A uniformly drawn neighbour: another link pattern, or another op at one node."""
        nbrs = self.neighbors(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    def neighbors(self, arch: GraphArch) -> list[GraphArch]:
        self.validate(arch)
        link, names = arch
        out = [GraphArch(lk, names) for lk in LINKS if lk != link]
        for i in range(N_NODES):
            for op in self.ops:
                new = names[:i] + (op,) + names[i + 1 :]
                if op != names[i] and new != _ALL_SKIP:
                    out.append(GraphArch(link, new))  # type: ignore[arg-type]
        return out

    # --- validity and identity ------------------------------------------------------
    def validate(self, arch: Any) -> None:
        _check(arch, self.ops)

    def key(self, arch: GraphArch) -> str:
        try:
            return _key(self.op_set, arch)
        except TypeError:  # unhashable, e.g. lists inside
            self.validate(arch)  # the specific reason, where there is one
            raise InvalidArchitectureError(
                f"a NAS-Bench-Graph architecture is immutable (tuples), got {arch!r}"
            ) from None

    # --- encodings --------------------------------------------------------------------
    def to_config(self, arch: GraphArch) -> dict[str, Any]:
        self.validate(arch)
        config: dict[str, Any] = {f"link_{i}": int(x) for i, x in enumerate(arch[0])}
        config.update({f"op_{i}": op for i, op in enumerate(arch[1])})
        return config

    def from_config(self, config: dict[str, Any]) -> GraphArch:
        try:
            link = tuple(int(config[f"link_{i}"]) for i in range(N_NODES))
            names = tuple(str(config[f"op_{i}"]) for i in range(N_NODES))
        except KeyError as exc:
            raise InvalidArchitectureError(f"config lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError):
            raise InvalidArchitectureError(
                f"config links must be integers, got {config!r}"
            ) from None
        arch = GraphArch(link, names)  # type: ignore[arg-type]
        self.validate(arch)
        return arch

    def to_sequence(self, arch: GraphArch) -> list[int]:
        self.validate(arch)
        first_op = 1 + len(LINKS)
        return [_LINK_INDEX[arch[0]] + 1] + [first_op + self._op_index[op] for op in arch[1]]

    def from_sequence(self, tokens: list[int]) -> GraphArch:
        first_op = 1 + len(LINKS)
        toks = [int(t) for t in tokens]
        if (
            len(toks) != self.seq_length
            or not 1 <= toks[0] < first_op
            or any(not first_op <= t < self.vocab_size for t in toks[1:])
        ):
            raise InvalidArchitectureError(
                f"a NAS-Bench-Graph sequence is a link token in 1..{len(LINKS)} then "
                f"{N_NODES} op tokens in {first_op}..{self.vocab_size - 1}, got {list(tokens)}"
            )
        arch = GraphArch(LINKS[toks[0] - 1], tuple(self.ops[t - first_op] for t in toks[1:]))
        self.validate(arch)  # rejects all-skip
        return arch  # type: ignore[return-value]

    def token_mask(self) -> np.ndarray:
        """Position 0 allows only link tokens, positions 1-4 only op tokens."""
        mask = np.zeros((self.seq_length, self.vocab_size), dtype=bool)
        mask[0, 1 : 1 + len(LINKS)] = True
        mask[1:, 1 + len(LINKS) :] = True
        return mask

    def to_graph(self, arch: GraphArch) -> tuple[np.ndarray, np.ndarray]:
        """6 vertices: input, the 4 op nodes, output; op columns are ``self.ops``, input, output.

        Edge ``link[i] -> i + 1`` feeds each op node; op nodes that no node reads feed the
        output, as in the benchmark's model. ``skip`` nodes stay vertices, so isomorphic
        encodings may give different graphs.
        """
        self.validate(arch)
        n, k = N_NODES + 2, len(self.ops)
        adj = np.zeros((n, n), dtype=np.int8)
        ops = np.zeros((n, k + 2), dtype=np.int8)
        ops[0, k] = 1
        ops[n - 1, k + 1] = 1
        link, names = arch
        for i, (src, op) in enumerate(zip(link, names, strict=True)):
            adj[src, i + 1] = 1
            ops[i + 1, self._op_index[op]] = 1
        for i in range(N_NODES):
            if i + 1 not in link:
                adj[i + 1, n - 1] = 1
        return adj, ops

    def to_string(self, arch: GraphArch) -> str:
        """``"link=0,0,1,2;ops=gcn,gat,skip,sage"``."""
        self.validate(arch)
        return f"link={','.join(map(str, arch[0]))};ops={','.join(arch[1])}"

    def from_string(self, text: str) -> GraphArch:
        try:
            parts = dict(part.split("=", 1) for part in text.replace(" ", "").split(";"))
            if set(parts) != {"link", "ops"}:
                raise ValueError
            link = tuple(int(x) for x in parts["link"].split(","))
            names = tuple(parts["ops"].split(","))
        except ValueError:
            raise InvalidArchitectureError(
                f"not a NAS-Bench-Graph arch string: {excerpt(text, 120)}; expected "
                "'link=0,0,1,2;ops=gcn,gat,skip,sage'"
            ) from None
        arch = GraphArch(link, names)  # type: ignore[arg-type]
        self.validate(arch)
        return arch

    # --- finite space -----------------------------------------------------------------
    def enumerate(self) -> Iterator[GraphArch]:
        """Every valid encoding: link patterns in :data:`LINKS` order, then ops."""
        for link in LINKS:
            for names in itertools.product(self.ops, repeat=N_NODES):
                if names != _ALL_SKIP:
                    yield GraphArch(link, names)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ops={self.op_set!r})"
