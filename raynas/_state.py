"""Saved states as plain data, in a file that cannot run code when it is read.

Searcher and study states are written by :func:`dump_state` with ``torch.save`` and read by
:func:`load_state` with ``torch.load(weights_only=True)``, whose unpickler rebuilds nothing but
containers, numbers, strings and tensors: a crafted file (a pickle whose ``__reduce__`` calls
``os.system``, say) is refused, never executed. Files of the older pickle format are refused
the same way.

A state is a tree of ``dict`` (keys: ``str``, ``int``, ``float``, ``bool``, ``None`` or tuples of
them), ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None`` and ``torch.Tensor``.
A few other values are stored as tagged dicts and come back as they were: numpy arrays and
scalars (as a tensor plus their dtype), ``set``, ``frozenset``, ``range``, ``bytes`` and the
architecture classes of the spaces (frozen dataclasses and named tuples, rebuilt from their
fields; a space of your own adds its class with :func:`register_type`). Anything else raises
:class:`TypeError` when the state is saved, so every saved state is known to be plain data.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "state.pt")
    >>> dump_state({"rows": [(1, "a")], "z": np.zeros(2, np.float32), "seen": {"k"}}, path)
    >>> load_state(path)
    {'rows': [(1, 'a')], 'z': array([0., 0.], dtype=float32), 'seen': {'k'}}
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import tempfile
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np

from raynas._errors import RaynasError

FORMAT = "raynas-state"
VERSION = 1
TAG = "__raynas__"  # the key that marks a tagged value; refused in the dicts of a state
_SCALARS = (str, int, float, bool, type(None))

#: Architecture classes a state may hold ("module:qualname"); the only classes a load builds.
_TYPES = {
    "raynas.spaces._nb101_cell:Cell101",
    "raynas.spaces._nasbench_graph:GraphArch",
    "raynas.spaces._darts:Genotype",
}


class StateFileError(RaynasError, ValueError):
    """A file is not a readable raynas state (cut short, of the older pickle format, or foreign)."""


def register_type(cls: type) -> type:
    """Allow instances of ``cls`` (a frozen dataclass or a named tuple, e.g. an architecture) in states."""
    if not (dataclasses.is_dataclass(cls) or (issubclass(cls, tuple) and hasattr(cls, "_fields"))):
        raise TypeError(f"{cls.__qualname__} is neither a dataclass nor a named tuple")
    _TYPES.add(_type_name(cls))
    return cls


def dump_state(state: Any, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, then ``os.replace``).

    ``path`` may be a :class:`raynas._storage.RemotePath` (a file on shared storage), written in
    one upload.

    Raises:
        TypeError: the state holds a value that is not plain data (the message gives its place).
    """
    import torch

    tree = {"format": FORMAT, "version": VERSION, "state": _encode(state, "state", torch)}
    if not isinstance(path, (str, os.PathLike)):  # a RemotePath
        buffer = io.BytesIO()
        torch.save(tree, buffer)
        path.write_bytes(buffer.getvalue())
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(tree, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_state(path: str | os.PathLike) -> Any:
    """The state saved in ``path`` by :func:`dump_state`.

    Raises:
        StateFileError: the file is cut short, of the older pickle format, or not a raynas state.
    """
    import torch

    # A RemotePath is read first, outside the ``try``: a storage error is not a broken state file.
    source = os.fspath(path) if isinstance(path, (str, os.PathLike)) else io.BytesIO(path.read_bytes())
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of foreign files
            warnings.simplefilter("ignore")
            tree = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise StateFileError(
            f"{path} is not a readable raynas state ({reason}); it may be cut short, or a pickle of "
            "an older raynas, which is not read because unpickling can run code"
        ) from None
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise StateFileError(f"{path} is not a raynas state file")
    if tree.get("version") != VERSION:
        raise StateFileError(f"{path} is a raynas state of format version {tree.get('version')}, "
                             f"this raynas reads version {VERSION}")
    try:
        return _decode(tree["state"], torch)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"{path} holds a malformed raynas state: {exc}") from None


# ---------------------------------------------------------------------- encoding
def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _key(key: Any, where: str) -> Any:
    if type(key) in _SCALARS or (type(key) is tuple and all(type(k) in _SCALARS for k in key)):
        return key
    raise TypeError(f"cannot save {where}: a dict key of type {type(key).__name__} ({key!r}) is not plain data")


def _encode(obj: Any, where: str, torch) -> Any:
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind in (dict, OrderedDict):
        if TAG in obj:
            raise TypeError(f"cannot save {where}: the key {TAG!r} is reserved")
        return {_key(k, where): _encode(v, f"{where}[{k!r}]", torch) for k, v in obj.items()}
    if kind is list:
        return [_encode(v, f"{where}[{i}]", torch) for i, v in enumerate(obj)]
    if kind is tuple:
        return tuple(_encode(v, f"{where}[{i}]", torch) for i, v in enumerate(obj))
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, (np.ndarray, np.generic)):
        array = np.array(obj, order="C", copy=True)
        try:
            data = torch.from_numpy(array)
        except TypeError as exc:
            raise TypeError(f"cannot save {where}: numpy dtype {array.dtype} has no tensor type ({exc})") from None
        return {TAG: "ndarray", "data": data, "dtype": str(array.dtype), "scalar": isinstance(obj, np.generic)}
    if kind in (set, frozenset):
        return {TAG: kind.__name__, "items": [_encode(v, f"{where} item", torch) for v in obj]}
    if kind is range:
        return {TAG: "range", "args": (obj.start, obj.stop, obj.step)}
    if kind is bytes:
        return {TAG: "bytes", "data": torch.from_numpy(np.frombuffer(obj, dtype=np.uint8).copy())}
    name = _type_name(kind)
    if name in _TYPES:
        items = obj._asdict() if isinstance(obj, tuple) else {
            f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {TAG: "object", "type": name, "fields": _encode(dict(items), f"{where}.{kind.__name__}", torch)}
    raise TypeError(f"cannot save {where}: a {name} is not plain data (only containers, numbers, strings, "
                    "tensors, numpy arrays and registered architecture classes are; see raynas._state)")


def _decode(obj: Any, torch) -> Any:
    if isinstance(obj, list):
        return [_decode(v, torch) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_decode(v, torch) for v in obj)
    if not isinstance(obj, dict):
        return obj
    tag = obj.get(TAG)
    if tag is None:
        return {k: _decode(v, torch) for k, v in obj.items()}
    if tag == "ndarray":
        array = obj["data"].numpy()
        if str(array.dtype) != obj["dtype"]:
            raise ValueError(f"an array of dtype {array.dtype} is recorded as {obj['dtype']}")
        return array[()] if obj["scalar"] else array
    if tag in ("set", "frozenset"):
        return (set if tag == "set" else frozenset)(_decode(v, torch) for v in obj["items"])
    if tag == "range":
        return range(*(int(a) for a in obj["args"]))
    if tag == "bytes":
        return obj["data"].numpy().tobytes()
    if tag == "object" and obj["type"] in _TYPES:
        module, _, qualname = obj["type"].partition(":")
        cls = getattr(importlib.import_module(module), qualname)
        return cls(**_decode(obj["fields"], torch))
    raise ValueError(f"unknown tagged value {tag!r} {obj.get('type', '')}".rstrip())
