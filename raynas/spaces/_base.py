"""The search-space interface shared by every space.

An architecture is immutable, hashable plain data (a tuple or a frozen dataclass). A space
knows how to sample, mutate, validate, canonicalise and encode its architectures; it holds no
results and no networks.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from raynas._errors import InvalidArchitectureError

Arch = Hashable


class Space(abc.ABC):
    """A neural-architecture search space.

    Subclasses set ``name``, ``cardinality`` (number of distinct encodings, or ``None`` when
    unbounded), ``seq_length`` and ``vocab_size`` (for LSTM controllers; token 0 is padding),
    and implement the abstract methods.
    """

    name: str = ""
    cardinality: int | None = None
    #: Number of distinct cells up to isomorphism (distinct keys), where known.
    n_classes: int | None = None
    seq_length: int = 0
    vocab_size: int = 0

    # --- sampling and neighbourhoods -------------------------------------------------
    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Arch:
        """Draw a valid architecture uniformly (or as the space's paper defines) with ``rng``."""

    @abc.abstractmethod
    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """Return a valid architecture that differs from ``arch`` by one random edit."""

    @abc.abstractmethod
    def neighbors(self, arch: Arch) -> list[Arch]:
        """All valid architectures one edit away from ``arch`` (deterministic order)."""

    # --- validity and identity ------------------------------------------------------
    @abc.abstractmethod
    def validate(self, arch: Arch) -> None:
        """Raise :class:`InvalidArchitectureError` with the reason if ``arch`` is invalid."""

    def is_valid(self, arch: Arch) -> bool:
        try:
            self.validate(arch)
        except InvalidArchitectureError:
            return False
        return True

    @abc.abstractmethod
    def key(self, arch: Arch) -> str:
        """Canonical id: architectures that compute the same function share a key."""

    # --- encodings --------------------------------------------------------------------
    @abc.abstractmethod
    def to_config(self, arch: Arch) -> dict[str, Any]:
        """Flat dict of JSON scalars (a Ray Tune config and a Parquet row)."""

    @abc.abstractmethod
    def from_config(self, config: dict[str, Any]) -> Arch:
        """Inverse of :meth:`to_config`; extra keys are ignored."""

    @abc.abstractmethod
    def to_sequence(self, arch: Arch) -> list[int]:
        """Token sequence of length ``seq_length`` with tokens in ``[1, vocab_size)``."""

    @abc.abstractmethod
    def from_sequence(self, tokens: list[int]) -> Arch:
        """Inverse of :meth:`to_sequence`; raises :class:`InvalidArchitectureError`."""

    def to_full_sequence(self, arch: Arch) -> list[int]:
        """A fixed-length encoding with a real token at every position that :meth:`from_sequence`
        accepts, for samplers and decoders that never stop early.

        The same as :meth:`to_sequence` unless a space pads short cells (NAS-Bench-101 writes its
        padded 7-vertex layout instead of pad tokens).
        """
        return self.to_sequence(arch)

    def token_mask(self) -> np.ndarray:
        """Boolean ``(seq_length, vocab_size)`` array of the tokens allowed at each position.

        Controllers use it to constrain decoding. The default allows every non-pad token.
        """
        mask = np.ones((self.seq_length, self.vocab_size), dtype=bool)
        mask[:, 0] = False
        return mask

    @abc.abstractmethod
    def to_graph(self, arch: Arch) -> tuple[np.ndarray, np.ndarray]:
        """``(adjacency (V, V), one-hot ops (V, n_ops))`` for graph encoders."""

    @abc.abstractmethod
    def to_string(self, arch: Arch) -> str:
        """The benchmark's own notation."""

    @abc.abstractmethod
    def from_string(self, text: str) -> Arch:
        """Parse the benchmark's own notation; raises :class:`InvalidArchitectureError`."""

    # --- finite spaces ----------------------------------------------------------------
    def enumerate(self) -> Iterator[Arch]:
        """Every architecture of a small finite space."""
        raise NotImplementedError(f"space {self.name!r} is too large to enumerate")

    # --- cost model -------------------------------------------------------------------
    def cost(self, arch: Arch) -> dict[str, float] | None:
        """``{'params': int, 'flops': int}`` where the space defines a cost model, else None.

        The image spaces (NAS-Bench-201, NAS-Bench-Macro, NAS-Bench-101, DARTS) give the cost
        of the network :func:`raynas.trainables.networks.build_network` builds at their
        standard CIFAR-10 setting, with one convention for all (NAS-Bench-Macro's): trainable
        parameters, and multiply-adds of the conv and linear layers for one 3x32x32 image
        (biases excluded), 10 classes, the paper's default widths. Other spaces (e.g.
        NAS-Bench-Graph) have no cost model and return None. See :mod:`raynas.spaces._cost`.
        """
        return None

    # --- helpers ----------------------------------------------------------------------
    @property
    def options(self) -> dict[str, Any]:
        """Constructor options: ``get_space(space.name, **space.options)`` rebuilds the space."""
        return {}

    def config_json(self, arch: Arch) -> str:
        return json.dumps(self.to_config(arch), sort_keys=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

