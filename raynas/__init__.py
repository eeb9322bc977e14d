"""raynas: neural-architecture search at cluster scale on Ray Tune."""

from __future__ import annotations

from raynas._errors import (
    BenchmarkFormatError,
    BenchmarkNotFoundError,
    CellNotTabulatedError,
    InvalidArchitectureError,
    RaynasError,
    UnknownNameError,
)

__version__ = "0.1.0"

__all__ = [
    "BenchmarkFormatError",
    "BenchmarkNotFoundError",
    "CellNotTabulatedError",
    "InvalidArchitectureError",
    "RaynasError",
    "UnknownNameError",
    "__version__",
]
