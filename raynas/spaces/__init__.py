"""Search spaces: ``get_space(name)`` for every space raynas knows.

Example:
    >>> from raynas.spaces import get_space
    >>> space = get_space("nasbench201")
    >>> space.cardinality
    15625
"""

from __future__ import annotations

import importlib
from typing import Any

from raynas._errors import UnknownNameError
from raynas.spaces._base import Arch, Space

# name -> (module, class); imported lazily so that `raynas spaces` stays fast.
_REGISTRY: dict[str, tuple[str, str]] = {
    "nasbench101": ("raynas.spaces._nasbench101", "NASBench101Space"),
    "nasbench201": ("raynas.spaces._nasbench201", "NASBench201Space"),
    "nasbench_macro": ("raynas.spaces._nasbench_macro", "NASBenchMacroSpace"),
    "nasbench_graph": ("raynas.spaces._nasbench_graph", "NASBenchGraphSpace"),
    "darts": ("raynas.spaces._darts", "DartsSpace"),
}


def space_names() -> list[str]:
    return list(_REGISTRY)


def get_space(name: str, **options: Any) -> Space:
    """Return the search space called ``name``; ``options`` go to its constructor."""
    if isinstance(name, Space):
        return name
    if name not in _REGISTRY:
        raise UnknownNameError("space", name, _REGISTRY)
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)(**options)


__all__ = ["Arch", "Space", "get_space", "space_names"]
