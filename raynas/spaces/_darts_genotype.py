"""DARTS genotypes as plain data: the ops, the ``Genotype`` tuple, its notation and checks.

A genotype lists, per cell (normal, reduce), 8 ``(op, input)`` pairs, two per intermediate
node; ``input`` 0 is ``c_{k-2}``, 1 is ``c_{k-1}`` and ``2 + m`` is intermediate node ``m``.
The space class in :mod:`raynas.spaces._darts` builds on these helpers, which hold no state;
import the public names from there.
"""

from __future__ import annotations

import ast
from typing import Any, NamedTuple

import numpy as np

from raynas._errors import InvalidArchitectureError

# DARTS's PRIMITIVES (cnn/genotypes.py), in its order.
OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELLS = ("normal", "reduce")
N_NODES = 4
CONCAT = range(2, 2 + N_NODES)
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


class Genotype(NamedTuple):
    """DARTS's ``Genotype`` (same fields, same order), kept immutable to serve as an arch.

    ``normal`` and ``reduce`` hold 8 ``(op, input)`` pairs, two per intermediate node; the
    concats are ``range(2, 6)``. ``repr`` prints DARTS's notation (lists); :func:`freeze`
    turns a genotype built by DARTS code (lists) into this form.
    """

    normal: tuple[tuple[str, int], ...]
    normal_concat: range
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: range

    def __repr__(self) -> str:
        try:
            return _format(self)
        except (TypeError, ValueError):  # not a well-formed genotype: show it as it is
            return "Genotype({})".format(
                ", ".join(f"{f}={v!r}" for f, v in zip(self._fields, self, strict=True))
            )


# Pickles (and the repr) of the class name the module it has always been imported from.
Genotype.__module__ = "raynas.spaces._darts"


def _format(g: Any) -> str:
    """DARTS's notation of genotype ``g``: lists of pairs, ``range(2, 6)`` concats."""

    def cell(pairs: Any) -> str:
        return repr([(str(op), int(i)) for op, i in pairs])

    def concat(c: Any) -> str:
        return "range(2, 6)" if _is_concat(c) else repr(c if isinstance(c, range) else list(c))

    return (
        f"Genotype(normal={cell(g[0])}, normal_concat={concat(g[1])}, "
        f"reduce={cell(g[2])}, reduce_concat={concat(g[3])})"
    )


def _is_concat(c: Any) -> bool:
    """Whether ``c`` lists nodes 2..5 (without materialising a huge range)."""
    if isinstance(c, range):
        return c == CONCAT
    return len(c) == N_NODES and tuple(c) == tuple(CONCAT)


def freeze(genotype: Any) -> Genotype:
    """An immutable :class:`Genotype` from any DARTS-style genotype (lists, numpy ints).

    Raises:
        InvalidArchitectureError: ``genotype`` is not shaped like a genotype.
    """
    try:
        normal, normal_concat, reduce, reduce_concat = genotype
        cells = [tuple((str(op), int(i)) for op, i in c) for c in (normal, reduce)]
        concats = [
            CONCAT if _is_concat(c) else c if isinstance(c, range) else tuple(c)
            for c in (normal_concat, reduce_concat)
        ]
    except (TypeError, ValueError):
        raise InvalidArchitectureError(
            f"not a DARTS genotype (normal, normal_concat, reduce, reduce_concat): {genotype!r}"
        ) from None
    return Genotype(cells[0], concats[0], cells[1], concats[1])


# The published DARTS cells (cnn/genotypes.py of the DARTS code; first- and second-order).
DARTS_V1 = freeze((
    [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
     ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    [2, 3, 4, 5],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    [2, 3, 4, 5],
))  # fmt: skip
DARTS_V2 = freeze((
    [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
     ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    [2, 3, 4, 5],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    [2, 3, 4, 5],
))  # fmt: skip
DARTS = DARTS_V2


def _check(arch: Any) -> None:
    """Raise :class:`InvalidArchitectureError` unless ``arch`` is a well-formed, valid genotype."""
    if not isinstance(arch, tuple) or len(arch) != 4:
        raise InvalidArchitectureError(
            "a DARTS architecture is a Genotype(normal, normal_concat, reduce, reduce_concat), "
            f"got {arch!r}"
        )
    for c, cell in enumerate(CELLS):
        pairs, concat = arch[2 * c], arch[2 * c + 1]
        if not isinstance(concat, (range, tuple)) or not _is_concat(concat):
            raise InvalidArchitectureError(
                f"{cell}_concat must be range(2, 6) (every intermediate node feeds the cell "
                f"output; lists are mutable, see freeze()), got {concat!r}"
            )
        if not isinstance(pairs, tuple) or len(pairs) != 2 * N_NODES:
            raise InvalidArchitectureError(
                f"{cell} must be a tuple of {2 * N_NODES} (op, input) pairs, two per node "
                f"(lists are mutable: convert DARTS genotypes with freeze()), got {pairs!r}"
            )
        for e, pair in enumerate(pairs):
            node = e // 2
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise InvalidArchitectureError(
                    f"{cell} edge {e} must be an (op, input) tuple, got {pair!r}"
                )
            op, inp = pair
            if op not in _OP_INDEX:
                raise InvalidArchitectureError(
                    f"{cell} node {node}: unknown op {op!r}; DARTS ops are {', '.join(OPS)}"
                )
            is_int = isinstance(inp, (int, np.integer)) and not isinstance(inp, bool)
            if not is_int or not 0 <= inp < node + 2:
                raise InvalidArchitectureError(
                    f"{cell} node {node}: input {inp!r} does not exist; node {node} reads one of "
                    f"0..{node + 1} (0 = c_{{k-2}}, 1 = c_{{k-1}}, 2+m = intermediate node m)"
                )
        for node in range(N_NODES):
            if pairs[2 * node][1] == pairs[2 * node + 1][1]:
                raise InvalidArchitectureError(
                    f"{cell} node {node}: both edges read input {pairs[2 * node][1]}; "
                    "the two inputs of a node must differ (the DARTS convention)"
                )


def _parse_genotype(text: str) -> tuple[Any, Any, Any, Any]:
    """The four fields of a ``Genotype(...)`` string, read as literals (nothing is evaluated)."""
    call = ast.parse(text.strip(), mode="eval").body
    func = call.func if isinstance(call, ast.Call) else None
    name = ""
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute):
        name = func.attr
    if name != "Genotype":
        raise ValueError("not a Genotype(...) call")
    fields = dict(zip(Genotype._fields, call.args, strict=False))
    for kw in call.keywords:
        if kw.arg not in Genotype._fields or kw.arg in fields:
            raise ValueError(f"unexpected or repeated field {kw.arg!r}")
        fields[kw.arg] = kw.value
    if len(call.args) > 4 or set(fields) != set(Genotype._fields):
        raise ValueError(f"a Genotype has the fields {', '.join(Genotype._fields)}")
    values = {}
    for field, node in fields.items():
        is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if is_call and node.func.id == "range":
            if node.keywords or not 1 <= len(node.args) <= 3:
                raise ValueError("range() takes 1 to 3 integers")
            values[field] = range(*(int(ast.literal_eval(a)) for a in node.args))
        else:
            values[field] = ast.literal_eval(node)
    return tuple(values[f] for f in Genotype._fields)  # type: ignore[return-value]
