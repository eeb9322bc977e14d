"""NAS strategies, each a Ray Tune :class:`~ray.tune.search.Searcher`.

``get_searcher(name, space, metric=..., mode=..., seed=..., **options)`` builds one by name:
the :data:`BASE_OPTIONS` go to :class:`ArchSearcher`, every other option is a field of the
strategy's settings dataclass (``searcher_class(name).config_class``), applied with
``dataclasses.replace`` and checked by name and type. ``searcher_options(name)`` lists a
strategy's options and their defaults; ``register_searcher`` adds a strategy of your own.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Any

from raynas._errors import UnknownNameError
from raynas.searchers._base import BASE_OPTIONS, ArchSearcher
from raynas.searchers._config import (
    OptionError,
    build_config,
    describe_type,
    option_help,
    option_types,
)
from raynas.searchers._joint import HPARAMS_KEY, JointSearcher

# name -> (module, class, one-line description); imported lazily (torch is slow to import).
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "random": ("raynas.searchers._random", "RandomSearcher", "uniform random search"),
    "evolution": ("raynas.searchers._evolution", "EvolutionSearcher",
                  "regularized evolution (Real et al., 2019)"),
    "reinforce": ("raynas.searchers._reinforce", "ReinforceSearcher",
                  "REINFORCE on a factorized categorical policy (Williams, 1992)"),
    "tpe": ("raynas.searchers._tpe", "TPESearcher", "tree-structured Parzen estimator via Optuna"),
    "local": ("raynas.searchers._local", "LocalSearcher",
              "local search over neighbourhoods (White et al., 2021)"),
    "dnas": ("raynas.searchers.dnas", "DNASSearcher",
             "Disentangled NAS: beta-VAE controller, dense sampling, latent optimization"),
    "nao": ("raynas.searchers.nao", "NAOSearcher", "Neural Architecture Optimization (Luo et al., 2018)"),
    "seminas": ("raynas.searchers.nao", "SemiNASSearcher", "semi-supervised NAO (Luo et al., 2020)"),
    "arch2vec-bo": ("raynas.searchers.arch2vec", "Arch2VecBOSearcher",
                    "arch2vec: DNGO + expected improvement on pretrained graph embeddings (Yan et al., 2020)"),
    "arch2vec-rl": ("raynas.searchers.arch2vec", "Arch2VecRLSearcher",
                    "arch2vec: REINFORCE in the pretrained latent space (Yan et al., 2020)"),
    "enas": ("raynas.searchers._enas", "ENASSearcher",
             "ENAS's LSTM controller with REINFORCE (Pham et al., 2018); optional memory regularizer"),
}


#: Strategies registered as class objects by ``register_searcher``.
_CLASSES: dict[str, type[ArchSearcher]] = {}


def searcher_names() -> list[str]:
    """Strategies whose module is present in this installation."""
    return [n for n, (mod, _, _) in _REGISTRY.items() if n in _CLASSES or importlib.util.find_spec(mod) is not None]


def register_searcher(name: str, cls: type[ArchSearcher] | str, description: str = "") -> None:
    """Make a strategy of your own available by ``name``.

    Args:
        name: The name ``get_searcher`` and ``--methods`` will know it by.
        cls: The :class:`ArchSearcher` subclass, or ``"module:Class"`` to import it lazily (the
            form that also works in Ray workers, which import it by that path).
        description: One line for ``raynas searchers``.
    """
    if isinstance(cls, str):
        module, _, attr = cls.partition(":")
        _CLASSES.pop(name, None)
    else:
        if not (isinstance(cls, type) and issubclass(cls, ArchSearcher)):
            raise TypeError(f"{cls!r} is not an ArchSearcher subclass")
        module, attr = cls.__module__, cls.__qualname__
        _CLASSES[name] = cls
    _REGISTRY[name] = (module, attr, description or name)


def searcher_class(name: str) -> type[ArchSearcher]:
    if name not in _REGISTRY or name not in searcher_names():
        raise UnknownNameError("method", name, searcher_names())
    if name in _CLASSES:
        return _CLASSES[name]
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def describe(name: str) -> str:
    return _REGISTRY[name][2]


def searcher_options(name: str) -> dict[str, Any]:
    """The strategy's own options (the fields of its config dataclass) with their defaults."""
    config = searcher_class(name).config_class()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def searcher_option_types(name: str) -> dict[str, str]:
    """Option name -> its type in words (``'int'``, ``'float'``, ``'int or null'``, ...)."""
    return {k: describe_type(v) for k, v in option_types(searcher_class(name).config_class).items()}


def searcher_option_help(name: str) -> dict[str, tuple[str, str | None]]:
    """Option name -> (one-line description, the paper's value or None where the paper gives none)."""
    return option_help(searcher_class(name).config_class)


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse unknown or ill-typed options of strategy ``name`` before anything runs."""
    build_config(searcher_class(name).config_class, name, dict(options))


def get_searcher(name: str, space, **options: Any) -> ArchSearcher:
    """Build the strategy ``name`` over ``space``.

    Args:
        name: A registered strategy (``searcher_names()``).
        space: A :class:`~raynas.spaces.Space` or its name.
        **options: :data:`BASE_OPTIONS` (metric, mode, seed, candidates, cost_fn, max_cost,
            max_retries), ``config=`` (a complete settings object) and any field of the
            strategy's config; explicit fields override ``config``.

    Raises:
        UnknownNameError: unknown strategy or option (the message lists the valid ones).
        OptionError: an option of the wrong type or outside its range.
    """
    cls = searcher_class(name)
    base = {k: options.pop(k) for k in BASE_OPTIONS if k in options}
    given = options.pop("config", None)
    config = build_config(cls.config_class, name, options, base=given)
    return cls(space, config=config, **base)


__all__ = [
    "BASE_OPTIONS",
    "HPARAMS_KEY",
    "ArchSearcher",
    "JointSearcher",
    "OptionError",
    "check_options",
    "describe",
    "get_searcher",
    "register_searcher",
    "searcher_class",
    "searcher_names",
    "searcher_option_help",
    "searcher_option_types",
    "searcher_options",
]
