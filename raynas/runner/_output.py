"""Output folders: checked before anything is written, created with a clear error when they cannot be."""

from __future__ import annotations

import json
import os
from pathlib import Path

from raynas._errors import OutputFolderError
from raynas._storage import RemotePath, check_remote_folder, download, is_uri, shown, working_copy


def refuse_uri(out: str | os.PathLike) -> None:
    """Refuse a storage URI where only a local file or folder will do (``data convert --out``, figures).

    Without this check ``s3://bucket/x`` would silently become a local folder named ``s3:``.
    """
    if "://" in os.fspath(out):
        raise OutputFolderError(
            f"{shown(os.fspath(out))}: this --out must be a local or mounted folder (experiments take "
            "storage URIs: `raynas compare --out s3://bucket/x`)"
        )


def experiment_folder(out: str | os.PathLike, names: tuple[str, ...]) -> tuple[Path, Path | RemotePath]:
    """``(local, root)`` of an experiment's ``--out``, checked; writes nothing there.

    ``root`` is where Tune's state and the studies' checkpoints go: the folder itself, or a
    :class:`~raynas._storage.RemotePath` when ``out`` is a storage URI (``s3://bucket/x``).
    ``local`` is where the driver writes results and reports: the folder itself, or a fresh local
    working copy (uploaded to ``root`` when written) that holds the files ``names`` of ``root``.
    """
    if is_uri(out):
        root = check_remote_folder(os.fspath(out))
        local = working_copy(os.fspath(out))
        download(root, local, names)
        return local, root
    path = check_output_folder(out)
    return path, path


def check_output_folder(out: str | os.PathLike) -> Path:
    """``out`` resolved, once it is clear that it is (or can become) a writable folder; writes nothing.

    Raises:
        OutputFolderError: ``out`` is a URI, a file, lies under a file, or its nearest existing
            folder is not writable.
    """
    refuse_uri(out)
    path = Path(out).resolve()
    return _check_folder(path, path, os.fspath(out))


def check_output_file(out: str | os.PathLike) -> Path:
    """Like :func:`check_output_folder`, for an output file: its folder must be writable, and it no folder."""
    refuse_uri(out)
    path = Path(out).resolve()
    if path.is_dir():
        raise OutputFolderError(f"--out {os.fspath(out)} is a folder; give a file name, e.g. {path / 'table.parquet'}")
    _check_folder(path.parent, path, os.fspath(out))
    return path


def _check_folder(path: Path, target: Path, shown: str) -> Path:
    """``path`` after checking that it is (or can become) a writable folder; ``target`` is shown as ``shown``."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == target else f"lies under {existing}, which is a file"
        raise OutputFolderError(f"--out {shown} {where}, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputFolderError(f"--out {shown}: {existing} is not writable; choose another --out")
    return path


def write_definition(out: Path, name: str, definition: dict) -> None:
    """Create folder ``out`` and write ``definition`` to ``out/name`` atomically, as JSON.

    Called once every check has passed: it is the first thing an experiment writes. An ``OSError``
    (no permission, read-only or full disk) becomes one clear line.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (name + ".tmp")
        tmp.write_text(json.dumps(definition, indent=2))
        tmp.replace(out / name)
    except OSError as exc:
        raise OutputFolderError(f"cannot write {out / name}: {exc.strerror or exc}; choose another --out") from None
