"""Exceptions raised by raynas. Every message says what was wrong and what to do."""

from __future__ import annotations

import re
from collections.abc import Iterable


class RaynasError(Exception):
    """Base class of every raynas error."""


class InvalidArchitectureError(RaynasError, ValueError):
    """An architecture is not a member of its search space; the message gives the reason."""


class BenchmarkFormatError(RaynasError, ValueError):
    """A benchmark file is corrupt, truncated or not in the expected format."""


class BenchmarkNotFoundError(RaynasError, FileNotFoundError):
    """The data of a benchmark could not be found."""


class CellNotTabulatedError(RaynasError, KeyError):
    """A (partial) benchmark table has no row for the queried cell."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class OutputFolderError(RaynasError, ValueError):
    """An output folder (or file) cannot be written where it was asked for."""


class UnknownNameError(RaynasError, ValueError):
    """A name (space, benchmark, dataset, method, metric) is not known."""

    def __init__(self, kind: str, name: object, valid: Iterable[object]):
        self.kind, self.name, self.valid = kind, name, sorted(str(v) for v in valid)
        head, sep, tail = kind.partition(" of ")  # "option of dnas" -> "options of dnas"
        super().__init__(f"unknown {kind} {name!r}; valid {head}s{sep}{tail}: {', '.join(self.valid)}")


def check_positive(name: str, value: int | float) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def excerpt(text: str | bytes | list, limit: int = 40) -> str:
    """A short excerpt of file content for a message, escaped by ``ascii()``; never the raw bytes."""
    if not isinstance(text, (str, bytes, list)):
        return ascii(text)
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")


def parse_error(exc: Exception) -> str:
    """Why a parser refused a file, with any quoted file content cut to a short escaped excerpt."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"
    message = str(exc)
    quoted = re.match(r"(.*?columns, got \d+): (.*)", message, re.DOTALL)  # pyarrow quotes the whole CSV row
    if quoted:
        return f"{quoted[1]}: {excerpt(quoted[2])}"
    return message if message.isprintable() and len(message) <= 300 else excerpt(message, 300)
