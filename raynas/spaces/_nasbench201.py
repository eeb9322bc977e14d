"""NAS-Bench-201 (Dong & Yang, ICLR 2020): a 4-node cell with 6 edges, 5 operations each."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np

from raynas._errors import InvalidArchitectureError, excerpt
from raynas.spaces._base import Space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Edge e connects EDGES[e] = (source, target), in the order of the official arch string
# |op~0|+|op~0|op~1|+|op~0|op~1|op~2|.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

Arch201 = tuple[str, str, str, str, str, str]
_OPS_SET = frozenset(OPS)


@cache
def _canonical(arch: Arch201) -> str:
    """The NAS-Bench-201 paper's isomorphism id of a cell (6,466 classes over 15,625 cells).

    Node 0 is the symbol ``0``. Each later node joins, in sorted order, one term per incoming
    edge: ``#`` for a ``none`` edge or a source that is exactly ``#``, the source's string for
    ``skip_connect``, and ``(source)@op`` otherwise. The output node's string is the id. This is
    the rule the benchmark itself used to count unique cells (zeros considered), so our keys
    induce the same partition as its ``UniqueString`` column.
    """
    nodes = {0: "0"}
    for node in (1, 2, 3):
        terms = []
        for (src, dst), op in zip(EDGES, arch):
            if dst != node:
                continue
            if op == "none" or nodes[src] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[src])
            else:
                terms.append(f"({nodes[src]})@{op}")
        nodes[node] = "+".join(sorted(terms))
    return nodes[3]


class NASBench201Space(Space):
    """The NAS-Bench-201 / NATS-Bench topology space (15,625 cells, 6,466 isomorphism classes).

    An architecture is a tuple of 6 op names, one per edge in official order.

    Example:
        >>> space = NASBench201Space()
        >>> arch = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
        ...                          "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
        >>> space.to_sequence(arch)
        [4, 4, 5, 2, 4, 2]
    """

    name = "nasbench201"
    ops = OPS
    cardinality = len(OPS) ** len(EDGES)
    n_classes = 6466  # isomorphism classes, as counted by the NAS-Bench-201 paper
    seq_length = len(EDGES)
    vocab_size = len(OPS) + 1

    def sample(self, rng: np.random.Generator) -> Arch201:
        return tuple([OPS[i] for i in rng.integers(0, len(OPS), len(EDGES)).tolist()])  # type: ignore[return-value]

    def mutate(self, arch: Arch201, rng: np.random.Generator) -> Arch201:
        self.validate(arch)
        edge = int(rng.integers(len(EDGES)))
        choices = [op for op in OPS if op != arch[edge]]
        new = list(arch)
        new[edge] = choices[int(rng.integers(len(choices)))]
        return tuple(new)  # type: ignore[return-value]

    def neighbors(self, arch: Arch201) -> list[Arch201]:
        self.validate(arch)
        out = []
        for edge in range(len(EDGES)):
            for op in OPS:
                if op != arch[edge]:
                    out.append(arch[:edge] + (op,) + arch[edge + 1 :])
        return out  # type: ignore[return-value]

    def validate(self, arch: Any) -> None:
        if type(arch) is tuple and len(arch) == 6 and _OPS_SET.issuperset(arch):
            return  # fast path
        if not isinstance(arch, tuple) or len(arch) != len(EDGES):
            raise InvalidArchitectureError(
                f"a NAS-Bench-201 cell is a tuple of {len(EDGES)} op names, got {arch!r}"
            )
        for i, op in enumerate(arch):
            if op not in OPS:
                raise InvalidArchitectureError(
                    f"unknown op {op!r} on edge {i}; NAS-Bench-201 ops are {', '.join(OPS)}"
                )

    def key(self, arch: Arch201) -> str:
        self.validate(arch)
        return _canonical(arch)

    def to_config(self, arch: Arch201) -> dict[str, Any]:
        self.validate(arch)
        return {f"edge_{s}_{d}": op for (s, d), op in zip(EDGES, arch)}

    def from_config(self, config: dict[str, Any]) -> Arch201:
        try:
            arch = tuple(config[f"edge_{s}_{d}"] for s, d in EDGES)
        except KeyError as exc:
            raise InvalidArchitectureError(f"config lacks {exc.args[0]!r}") from None
        self.validate(arch)
        return arch  # type: ignore[return-value]

    def to_sequence(self, arch: Arch201) -> list[int]:
        self.validate(arch)
        return [OPS.index(op) + 1 for op in arch]

    def from_sequence(self, tokens: list[int]) -> Arch201:
        if len(tokens) != len(EDGES) or any(not 1 <= int(t) <= len(OPS) for t in tokens):
            raise InvalidArchitectureError(
                f"a NAS-Bench-201 sequence is {len(EDGES)} tokens in 1..{len(OPS)}, got {list(tokens)}"
            )
        return tuple(OPS[int(t) - 1] for t in tokens)  # type: ignore[return-value]

    def to_graph(self, arch: Arch201) -> tuple[np.ndarray, np.ndarray]:
        """8-vertex graph with ops on vertices: input, the 6 edge ops, output."""
        self.validate(arch)
        n = len(EDGES) + 2
        adj = np.zeros((n, n), dtype=np.int8)
        ops = np.zeros((n, len(OPS) + 2), dtype=np.int8)  # columns: OPS..., input, output
        ops[0, len(OPS)] = 1
        ops[n - 1, len(OPS) + 1] = 1
        for e, ((src, dst), op) in enumerate(zip(EDGES, arch)):
            v = e + 1
            ops[v, OPS.index(op)] = 1
            if src == 0:
                adj[0, v] = 1
            for e2, (_, d2) in enumerate(EDGES):  # edges that end where this one starts
                if d2 == src:
                    adj[e2 + 1, v] = 1
            if dst == 3:
                adj[v, n - 1] = 1
        return adj, ops

    def to_string(self, arch: Arch201) -> str:
        self.validate(arch)
        nodes = []
        for node in (1, 2, 3):
            nodes.append(
                "|" + "|".join(f"{op}~{s}" for (s, d), op in zip(EDGES, arch) if d == node) + "|"
            )
        return "+".join(nodes)

    def from_string(self, text: str) -> Arch201:
        parts = text.strip().split("+")
        ops: list[str] = []
        try:
            if len(parts) != 3:
                raise ValueError
            for node, part in enumerate(parts, start=1):
                items = [x for x in part.split("|") if x]
                if len(items) != node:
                    raise ValueError
                for src, item in enumerate(items):
                    op, s = item.split("~")
                    if int(s) != src:
                        raise ValueError
                    ops.append(op)
        except ValueError:
            raise InvalidArchitectureError(
                f"not a NAS-Bench-201 arch string: {excerpt(text, 120)}; expected "
                "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
            ) from None
        arch = tuple(ops)
        self.validate(arch)
        return arch  # type: ignore[return-value]

    def enumerate(self) -> Iterator[Arch201]:
        yield from itertools.product(OPS, repeat=len(EDGES))  # type: ignore[misc]

    def cost(self, arch: Arch201) -> dict[str, float]:
        """Params and FLOPs of the CIFAR-10 network of ``arch``, as Python ints.

        The network is the benchmark's (``C = 16``, 5 cells per stage, 10 classes); FLOPs are
        the conv and linear multiply-adds for one 32x32 image, biases excluded (NAS-Bench-Macro's
        convention). NAS-Bench-201's published CIFAR-10 costs are ``params / 1e6`` (in M) and
        ``(flops + 10) / 1e6`` (in MFLOPs: its counter adds the classifier's 10 bias additions),
        as checked on its all-``none`` and all-``nor_conv_3x3`` cells. A sum of a skeleton cost
        and one cost per edge and op, measured once from 25 network builds (under a second, on
        the first call); a call then takes a few microseconds.
        """
        self.validate(arch)
        from raynas.spaces._cost import additive_cost

        return additive_cost(self.name, (OPS,) * len(EDGES))(arch)  # type: ignore[return-value]
