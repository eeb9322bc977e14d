"""NAS strategies, each a Ray Tune :class:`~ray.tune.search.Searcher`.

``get_searcher(name, space, metric=..., mode=..., seed=..., **options)`` builds one by name;
``searcher_options(name)`` lists a strategy's options and their defaults.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from typing import Any

from raynas._errors import UnknownNameError
from raynas.searchers._base import ArchSearcher

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
}
_BASE_OPTIONS = frozenset(inspect.signature(ArchSearcher.__init__).parameters) | {"kwargs"}


def searcher_names() -> list[str]:
    """Strategies whose module is present in this installation."""
    return [n for n, (mod, _, _) in _REGISTRY.items() if importlib.util.find_spec(mod) is not None]


def searcher_class(name: str) -> type[ArchSearcher]:
    if name not in _REGISTRY or name not in searcher_names():
        raise UnknownNameError("method", name, searcher_names())
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def describe(name: str) -> str:
    return _REGISTRY[name][2]


def searcher_options(name: str) -> dict[str, Any]:
    """The strategy's own options with their defaults (base options excluded)."""
    cls = searcher_class(name)
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is ArchSearcher or not issubclass(klass, ArchSearcher):
            break
        for pname, param in inspect.signature(klass.__init__).parameters.items():
            if pname in _BASE_OPTIONS or pname in out or param.kind is param.VAR_KEYWORD:
                continue
            out[pname] = None if param.default is inspect.Parameter.empty else param.default
    return out


def get_searcher(name: str, space, **options: Any) -> ArchSearcher:
    """Build the strategy ``name`` over ``space``; unknown options raise a clear error."""
    cls = searcher_class(name)
    known = set(searcher_options(name)) | _BASE_OPTIONS
    unknown = set(options) - known
    if unknown:
        raise UnknownNameError(f"option of {name}", sorted(unknown)[0], sorted(known - {"self", "space", "kwargs"}))
    return cls(space, **options)


__all__ = ["ArchSearcher", "describe", "get_searcher", "searcher_class", "searcher_names", "searcher_options"]
