"""NAS-Bench-Macro (Su et al., 2021): 8 searchable layers, 3 choices each."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from raynas._errors import InvalidArchitectureError, excerpt
from raynas.spaces._base import Space

OPS = ("Identity", "MB3_K3", "MB6_K5")
N_LAYERS = 8

ArchMacro = tuple[int, ...]


class NASBenchMacroSpace(Space):
    """NAS-Bench-Macro: a tuple of 8 choices in {0: Identity, 1: MB3_K3, 2: MB6_K5}.

    Keys are the benchmark's own 8-digit strings such as ``"02012100"``. Identity layers are
    real layers of the benchmark (they change the resolution schedule), so every encoding is
    its own class.

    Example:
        >>> NASBenchMacroSpace().from_string("02012100")
        (0, 2, 0, 1, 2, 1, 0, 0)
    """

    name = "nasbench_macro"
    ops = OPS
    cardinality = len(OPS) ** N_LAYERS
    n_classes = len(OPS) ** N_LAYERS
    seq_length = N_LAYERS
    vocab_size = len(OPS) + 1

    def sample(self, rng: np.random.Generator) -> ArchMacro:
        return tuple(int(x) for x in rng.integers(0, len(OPS), size=N_LAYERS))

    def mutate(self, arch: ArchMacro, rng: np.random.Generator) -> ArchMacro:
        self.validate(arch)
        layer = int(rng.integers(N_LAYERS))
        choices = [c for c in range(len(OPS)) if c != arch[layer]]
        new = list(arch)
        new[layer] = choices[int(rng.integers(len(choices)))]
        return tuple(new)

    def neighbors(self, arch: ArchMacro) -> list[ArchMacro]:
        self.validate(arch)
        return [
            arch[:i] + (c,) + arch[i + 1 :]
            for i in range(N_LAYERS)
            for c in range(len(OPS))
            if c != arch[i]
        ]

    def validate(self, arch: Any) -> None:
        if not isinstance(arch, tuple) or len(arch) != N_LAYERS:
            raise InvalidArchitectureError(
                f"a NAS-Bench-Macro architecture is a tuple of {N_LAYERS} choices, got {arch!r}"
            )
        for i, c in enumerate(arch):
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < len(OPS):
                raise InvalidArchitectureError(
                    f"layer {i} has choice {c!r}; choices are 0 (Identity), 1 (MB3_K3), 2 (MB6_K5)"
                )

    def key(self, arch: ArchMacro) -> str:
        self.validate(arch)
        return "".join(str(int(c)) for c in arch)

    def to_config(self, arch: ArchMacro) -> dict[str, Any]:
        self.validate(arch)
        return {f"layer_{i}": int(c) for i, c in enumerate(arch)}

    def from_config(self, config: dict[str, Any]) -> ArchMacro:
        try:
            arch = tuple(int(config[f"layer_{i}"]) for i in range(N_LAYERS))
        except KeyError as exc:
            raise InvalidArchitectureError(f"config lacks {exc.args[0]!r}") from None
        self.validate(arch)
        return arch

    def to_sequence(self, arch: ArchMacro) -> list[int]:
        self.validate(arch)
        return [int(c) + 1 for c in arch]

    def from_sequence(self, tokens: list[int]) -> ArchMacro:
        if len(tokens) != N_LAYERS or any(not 1 <= int(t) <= len(OPS) for t in tokens):
            raise InvalidArchitectureError(
                f"a NAS-Bench-Macro sequence is {N_LAYERS} tokens in 1..{len(OPS)}, got {list(tokens)}"
            )
        return tuple(int(t) - 1 for t in tokens)

    def to_graph(self, arch: ArchMacro) -> tuple[np.ndarray, np.ndarray]:
        """A chain: input, the 8 layers, output; op columns are OPS then input, output."""
        self.validate(arch)
        n = N_LAYERS + 2
        adj = np.eye(n, k=1, dtype=np.int8)
        ops = np.zeros((n, len(OPS) + 2), dtype=np.int8)
        ops[0, len(OPS)] = 1
        ops[n - 1, len(OPS) + 1] = 1
        for i, c in enumerate(arch):
            ops[i + 1, c] = 1
        return adj, ops

    def to_string(self, arch: ArchMacro) -> str:
        return self.key(arch)

    def from_string(self, text: str) -> ArchMacro:
        text = text.strip()
        if len(text) != N_LAYERS or any(ch not in "012" for ch in text):
            raise InvalidArchitectureError(
                f"not a NAS-Bench-Macro key: {excerpt(text, 120)}; expected 8 digits in 0-2 such as '02012100'"
            )
        return tuple(int(ch) for ch in text)

    def enumerate(self) -> Iterator[ArchMacro]:
        yield from itertools.product(range(len(OPS)), repeat=N_LAYERS)

    def cost(self, arch: ArchMacro) -> dict[str, float]:
        """Params and FLOPs of the network of ``arch``, as Python ints.

        Exactly the benchmark table's ``params`` and ``flops`` (raw counts): the benchmark's
        network with 10 classes, FLOPs being the conv and linear multiply-adds for one 32x32
        image, biases excluded. A sum of a skeleton cost and one cost per layer and choice,
        measured once from 17 network builds (well under a second, on the first call); a call
        then takes a few microseconds.
        """
        self.validate(arch)
        from raynas.spaces._cost import additive_cost

        choices = tuple(range(len(OPS)))
        return additive_cost(self.name, (choices,) * N_LAYERS)(arch)  # type: ignore[return-value]
