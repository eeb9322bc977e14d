"""Searcher settings: one typed dataclass per strategy, checked by name, type and range.

Every strategy keeps its options in a dataclass (``Searcher.config_class``) whose defaults are
the papers' values. :func:`build_config` turns flat options (``get_searcher(name, ...,
population_size=20)``, ``--set evolution.population_size=20``) into that dataclass with
``dataclasses.replace``, so that unknown names and values of the wrong type are refused with a
message naming the valid options before anything runs. Range checks live in each dataclass's
``__post_init__`` and run for every way a config is made.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from raynas._errors import RaynasError, UnknownNameError


class OptionError(RaynasError, ValueError):
    """A searcher option has a value of the wrong type or outside its range."""


def option(default: Any, help: str, paper: str | None = None) -> Any:
    """A config field with its one-line ``help`` and the value its paper gives (``raynas searchers``).

    Args:
        default: Our default.
        help: One line: what the option does, with its unit.
        paper: The value the method's paper (or reference code) uses, with the source, e.g.
            ``"0.8 (Zheng et al.)"``; None where the paper gives none (the default is ours).
    """
    return dataclasses.field(default=default, metadata={"help": help, "paper": paper})


def option_help(config_class: type) -> dict[str, tuple[str, str | None]]:
    """Field name -> (one-line help, the paper's value or None) of a config dataclass."""
    return {f.name: (f.metadata.get("help", ""), f.metadata.get("paper")) for f in dataclasses.fields(config_class)}


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """The settings of a strategy that has none (random search)."""


def option_types(config_class: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a config dataclass."""
    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class)}


def describe_type(tp: Any) -> str:
    """``int | None`` -> ``'int or null'``; used in messages and by ``raynas searchers``."""
    args = _union_args(tp)
    if args is not None:
        return " or ".join(describe_type(a) for a in args)
    if tp is type(None):
        return "null"
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and args:
        if args[-1] is Ellipsis:
            return f"tuple of {describe_type(args[0])}"
        return f"tuple of ({', '.join(describe_type(a) for a in args)})"
    return getattr(tp, "__name__", str(tp))


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is Union:
        return typing.get_args(tp)
    return None


def coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """``(True, value)`` (ints widened to float where a float is asked for) or ``(False, None)``."""
    args = _union_args(tp)
    if args is not None:
        for arg in args:
            ok, out = coerce(value, arg)
            if ok:
                return True, out
        return False, None
    if tp is type(None):
        return value is None, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, None
    origin = typing.get_origin(tp) or tp
    if origin is tuple and isinstance(value, (list, tuple)):  # JSON (e.g. --set) has lists, not tuples
        return _coerce_items(value, typing.get_args(tp))
    if isinstance(origin, type):
        return isinstance(value, origin), value
    return True, value  # an annotation we cannot check (e.g. a callable): accept as given


def _coerce_items(value: list | tuple, args: tuple[Any, ...]) -> tuple[bool, Any]:
    """``value`` as a tuple whose items have the types ``args`` (``(int, ...)``: any length)."""
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    if args and len(args) != len(value):
        return False, None
    items = [coerce(v, a) for v, a in zip(value, args)] if args else [(True, v) for v in value]
    if not all(ok for ok, _ in items):
        return False, None
    return True, tuple(v for _, v in items)


def build_config(config_class: type, owner: str, options: dict[str, Any], base: Any = None) -> Any:
    """The ``config_class`` instance with ``options`` applied over ``base`` (default: defaults).

    Raises:
        UnknownNameError: an option the strategy does not have (the message lists valid ones).
        OptionError: a value of the wrong type, or one the config's range checks refuse.
    """
    if base is not None and not isinstance(base, config_class):
        raise OptionError(f"{owner} takes config={config_class.__name__}(...), got {type(base).__name__}")
    hints = option_types(config_class)
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in hints:
            raise UnknownNameError(f"option of {owner}", name, hints)
        ok, value = coerce(value, hints[name])
        if not ok:
            raise OptionError(
                f"option {name} of {owner} must be of type {describe_type(hints[name])}, got {options[name]!r}; "
                f"e.g. {name}={getattr(config_class(), name)!r}"
            )
        checked[name] = value
    try:
        return dataclasses.replace(base if base is not None else config_class(), **checked)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"bad options for {owner}: {exc}") from None


def check_config(config: Any, config_class: type, owner: str) -> Any:
    """``config`` itself after checking that it is a ``config_class`` with well-typed fields."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return build_config(config_class, owner, values, base=config)


def require(condition: bool, message: str) -> None:
    """Range check for ``__post_init__``: raise ``ValueError(message)`` unless ``condition``."""
    if not condition:
        raise ValueError(message)
