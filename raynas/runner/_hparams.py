"""Hyperparameter search spaces written as text: ``'lr=loguniform(1e-3,0.2),batch_size=choice(64,128)'``.

The text is read with Python's ``ast`` (never evaluated): each item is ``NAME=FUNCTION(ARGS)``
with literal arguments, and FUNCTION is one of Ray Tune's sampling functions (:data:`FUNCTIONS`).
The parsed form, name -> canonical text, is what an experiment stores; :func:`to_domains` turns it
into ``ray.tune`` domains for the hyperparameter searcher.

Example:
    >>> parse_hparams("lr=loguniform(1e-3, 0.2), batch_size=choice(64, 128)")
    {'lr': 'loguniform(0.001, 0.2)', 'batch_size': 'choice(64, 128)'}
"""

from __future__ import annotations

import ast
from typing import Any

#: Function name -> (number of arguments or None for any, Ray Tune function name).
FUNCTIONS: dict[str, tuple[int | None, str]] = {
    "uniform": (2, "uniform"),
    "loguniform": (2, "loguniform"),
    "quniform": (3, "quniform"),
    "qloguniform": (3, "qloguniform"),
    "randint": (2, "randint"),
    "lograndint": (2, "lograndint"),
    "choice": (None, "choice"),
}
EXAMPLE = "lr=loguniform(1e-3,0.2),weight_decay=loguniform(1e-5,1e-3),batch_size=choice(64,128)"


class HparamSyntaxError(ValueError):
    """The hyperparameter text is not ``NAME=FUNCTION(ARGS),...``."""


def parse_hparams(text: str) -> dict[str, str]:
    """Parse ``NAME=FUNCTION(ARGS),...`` into name -> canonical ``FUNCTION(ARGS)`` text.

    Raises:
        HparamSyntaxError: with what was wrong and an example.
    """
    hint = f"; write NAME=FUNCTION(ARGS),... e.g. {EXAMPLE!r} (functions: {', '.join(FUNCTIONS)})"
    if not text or not text.strip():
        raise HparamSyntaxError("no hyperparameters given" + hint)
    try:
        tree = ast.parse(f"_({text})", mode="eval")
    except SyntaxError:
        raise HparamSyntaxError(f"cannot read {text!r}" + hint) from None
    call = tree.body
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise HparamSyntaxError(f"every item of {text!r} must be NAME=FUNCTION(ARGS)" + hint)
    out: dict[str, str] = {}
    for kw in call.keywords:
        value = kw.value
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and not value.keywords):
            raise HparamSyntaxError(f"{kw.arg}= must be a function call like loguniform(1e-3,0.2)" + hint)
        func = value.func.id
        if func not in FUNCTIONS:
            raise HparamSyntaxError(f"{kw.arg}: unknown function {func!r}" + hint)
        try:
            args = [ast.literal_eval(a) for a in value.args]
        except ValueError:
            raise HparamSyntaxError(f"{kw.arg}: the arguments of {func} must be numbers or strings" + hint) from None
        arity = FUNCTIONS[func][0]
        if (arity is not None and len(args) != arity) or not args:
            raise HparamSyntaxError(f"{kw.arg}: {func} takes {arity or 'one or more'} arguments, got {len(args)}" + hint)
        if func != "choice" and not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise HparamSyntaxError(f"{kw.arg}: the arguments of {func} must be numbers" + hint)
        if func != "choice" and not args[0] < args[1]:
            raise HparamSyntaxError(f"{kw.arg}: {func} needs lower < upper, got {args[0]} and {args[1]}" + hint)
        if func.startswith("log") and args[0] <= 0:
            raise HparamSyntaxError(f"{kw.arg}: {func} needs a positive lower bound, got {args[0]}" + hint)
        out[kw.arg] = f"{func}({', '.join(repr(a) for a in args)})"
    return out


def _args(spec: str) -> tuple[str, list[Any]]:
    call = ast.parse(spec, mode="eval").body
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
    return call.func.id, [ast.literal_eval(a) for a in call.args]


def to_domains(hparams: dict[str, str]) -> dict[str, Any]:
    """Name -> ``ray.tune`` domain for the canonical texts of :func:`parse_hparams`."""
    from ray import tune

    out = {}
    for name, spec in hparams.items():
        func, args = _args(spec)
        fn = getattr(tune, FUNCTIONS[func][1])
        out[name] = fn(list(args)) if func == "choice" else fn(*args)
    return out


def extremes(hparams: dict[str, str]) -> dict[str, list[Any]]:
    """Name -> the values to check a space with: every choice, or both ends of a range."""
    out = {}
    for name, spec in hparams.items():
        func, args = _args(spec)
        if func == "choice":
            out[name] = list(args)
        elif func.endswith("randint"):
            out[name] = [args[0], args[1] - 1]  # Tune's randint excludes the upper bound
        else:
            out[name] = [args[0], args[1]]
    return out
