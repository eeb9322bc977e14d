"""Experiment folders on shared storage: ``--out s3://bucket/x`` or any other ``pyarrow.fs`` URI.

A cluster's studies run on many nodes, so their checkpoints and Tune's experiment state must
live where every node can reach them. raynas takes any URI that ``pyarrow.fs`` understands
(``s3://``, ``gs://``, ``abfs://``, ``hdfs://``, ``file://``), the same ones Ray Tune's
``storage_path`` takes:

* Tune's own state goes to the URI through ``RunConfig(storage_path=...)``;
* each study writes its checkpoints straight to ``<URI>/studies/<study>/`` from whichever node
  runs it;
* the driver writes the experiment definition, results and reports into a local working copy
  (:func:`working_copy`, under the user's cache folder) and uploads them (:func:`upload_tree`).

:class:`RemotePath` gives a folder on such storage the few ``pathlib.Path`` methods that the
checkpoint code uses, so that code is the same for local and remote folders. Credentials come
from the environment (``AWS_*`` variables, an instance profile, ``gcloud`` login), never from
files of raynas; a URI may hold query options (``?region=...&endpoint_override=...``), which are
kept on every path derived from it.

Example:
    >>> p = as_path("s3://bucket/exp?region=eu-west-1")  # doctest: +SKIP
    >>> str(p / "studies" / "dnas_seed0")  # doctest: +SKIP
    's3://bucket/exp/studies/dnas_seed0?region=eu-west-1'
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from raynas._errors import OutputFolderError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: str | os.PathLike | None) -> bool:
    """Whether ``location`` is a URI (``scheme://...``) rather than a local path."""
    return location is not None and isinstance(location, (str, RemotePath)) and bool(_SCHEME.match(str(location)))


def shown(location: str | os.PathLike) -> str:
    """``location`` for messages: a URI without the user and password it may carry."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", os.fspath(location) if not isinstance(
        location, RemotePath) else str(location))


class RemotePath:
    """A file or folder on a ``pyarrow.fs`` file system, with the ``Path`` methods raynas needs.

    Only strings cross process boundaries (``str(path)`` is the URI): each process builds its own
    file system from the URI with its own credentials.
    """

    def __init__(self, uri: str, _parts: tuple[str, ...] = (), _fs: Any = None, _root: str | None = None):
        base, _, query = uri.partition("?")
        self._base, self._query, self._parts = base.rstrip("/"), query, _parts
        if _fs is None:
            import pyarrow.fs as pafs

            try:
                _fs, _root = pafs.FileSystem.from_uri(uri)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
                raise OutputFolderError(f"{shown(uri)}: not a storage URI pyarrow can open "
                                        f"({_first_line(exc)})") from None
        self.fs, self._root = _fs, _root.rstrip("/")

    # ------------------------------------------------------------------ naming
    @property
    def path(self) -> str:
        """The path on :attr:`fs` (e.g. ``bucket/exp/studies``)."""
        return "/".join((self._root, *self._parts)) if self._parts else self._root

    @property
    def name(self) -> str:
        return self._parts[-1] if self._parts else self._root.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self._uri(), self._parts[:-1], self.fs, self._root)

    def _uri(self) -> str:
        return self._base + ("?" + self._query if self._query else "")

    def __truediv__(self, part: str) -> RemotePath:
        extra = tuple(p for p in str(part).split("/") if p)
        return RemotePath(self._uri(), self._parts + extra, self.fs, self._root)

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def __str__(self) -> str:
        path = "/".join((self._base, *self._parts))
        return path + ("?" + self._query if self._query else "")

    def __repr__(self) -> str:
        return f"RemotePath({shown(str(self))!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __lt__(self, other: RemotePath) -> bool:
        return self.path < other.path

    def __hash__(self) -> int:
        return hash(str(self))

    # ------------------------------------------------------------------ queries
    def _info(self):
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def stat(self) -> os.stat_result:
        size = self._info().size or 0
        return os.stat_result((0, 0, 0, 0, 0, 0, size, 0, 0, 0))

    def iterdir(self) -> Iterator[RemotePath]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        for info in sorted(infos, key=lambda i: i.path):
            yield self / info.path.rstrip("/").rsplit("/", 1)[-1]

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """Entries of this folder whose name matches ``pattern`` (one level, no ``/``)."""
        if "/" in pattern:
            raise ValueError(f"RemotePath.glob takes a name pattern, not {pattern!r}")
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    # ------------------------------------------------------------------ reading and writing
    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as fh:
                return fh.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            if not self.exists():
                raise FileNotFoundError(str(self)) from None
            raise OSError(f"cannot read {shown(self)}: {_first_line(exc)}") from None

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file in one upload (an object store replaces an object atomically)."""
        self.fs.create_dir(self.parent.path, recursive=True)
        with self.fs.open_output_stream(self.path) as fh:
            fh.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def replace(self, target: RemotePath) -> RemotePath:
        """Move a file (copy and delete on object stores); a folder moves with all it holds."""
        if not self.exists():
            raise FileNotFoundError(str(self))
        if self.is_dir():
            import pyarrow.fs as pafs

            pafs.copy_files(self.path, target.path, source_filesystem=self.fs, destination_filesystem=self.fs)
            self.fs.delete_dir(self.path)
        else:
            self.fs.move(self.path, target.path)
        return target

    rename = replace


def as_path(location: str | os.PathLike | RemotePath) -> Path | RemotePath:
    """A local ``Path`` (resolved), or a :class:`RemotePath` for a URI (``file://`` stays a URI)."""
    if isinstance(location, (Path, RemotePath)):
        return location
    return RemotePath(location) if is_uri(location) else Path(location)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------- experiment folders
def check_remote_folder(uri: str, what: str = "--out ") -> RemotePath:
    """``uri`` as a :class:`RemotePath`, once it is clear that it can be listed; writes nothing.

    Raises:
        OutputFolderError: the URI cannot be parsed, its storage cannot be reached (no
            credentials, no such bucket), or it names a file.
    """
    path = RemotePath(uri)
    try:
        info = path._info()
        if info.type.name == "File":
            raise OutputFolderError(f"{what}{shown(uri)} is a file, not a folder; choose another --out")
        next(iter(path.iterdir()), None)
    except OutputFolderError:
        raise
    except Exception as exc:  # noqa: BLE001 - reachability: credentials, bucket, network
        raise OutputFolderError(f"{what}{shown(uri)}: the storage cannot be reached ({_first_line(exc)}); "
                                "check the bucket name and your credentials (e.g. AWS_* variables)") from None
    return path


def working_copy(uri: str) -> Path:
    """The local folder where the driver writes an experiment whose ``--out`` is ``uri``, emptied.

    Under ``$XDG_CACHE_HOME/raynas/remote/`` (default ``~/.cache``), one folder per URI.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raynas" / "remote"
    folder = base / hashlib.sha256(shown(uri).encode()).hexdigest()[:16]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def download(remote: RemotePath, local: Path, names: tuple[str, ...]) -> None:
    """Copy the files ``names`` (relative paths) from ``remote`` into ``local``, where they exist."""
    for name in names:
        src = remote / name
        try:
            data = src.read_bytes()
        except FileNotFoundError:
            continue
        dest = local / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def download_tree(remote: RemotePath, local: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy every file under ``remote`` into ``local``, except the top-level entries ``skip``."""
    for entry in remote.iterdir():
        if entry.name in skip:
            continue
        if entry.is_dir():
            download_tree(entry, local / entry.name)
        else:
            (local).mkdir(parents=True, exist_ok=True)
            (local / entry.name).write_bytes(entry.read_bytes())


def upload_tree(local: Path, remote: RemotePath) -> None:
    """Copy every file under ``local`` to the same place under ``remote``."""
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        (remote / file.relative_to(local).as_posix()).write_bytes(file.read_bytes())


def fetch(uri: str) -> Path:
    """A local copy of the data file ``uri`` (``--data s3://...``), downloaded once into the cache.

    The copy is kept under ``$XDG_CACHE_HOME/raynas/data/`` and reused while the remote file has
    the same size; it is written under a temporary name first, so a cut download is never used.
    """
    src = RemotePath(uri)
    try:
        info = src._info()
    except Exception as exc:  # noqa: BLE001
        raise OutputFolderError(f"--data {shown(uri)}: the storage cannot be reached ({_first_line(exc)})") from None
    if info.type.name != "File":
        raise OutputFolderError(f"--data {shown(uri)}: no such file; give the URI of a benchmark file")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raynas" / "data"
    dest = base / hashlib.sha256(shown(uri).encode()).hexdigest()[:16] / src.name
    if dest.is_file() and dest.stat().st_size == info.size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with src.fs.open_input_stream(src.path) as fh, open(tmp, "wb") as out:
        shutil.copyfileobj(fh, out, 1 << 20)
    tmp.replace(dest)
    return dest
