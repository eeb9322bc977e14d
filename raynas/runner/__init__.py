"""Running searchers: the simulated asynchronous backend, studies, and compare/resume."""

from __future__ import annotations

from raynas.runner._simulator import SimState, simulate

__all__ = ["SimState", "simulate"]
