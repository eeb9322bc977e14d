"""Helpers shared by the sequence controllers of NAO, SemiNAS and DNAS.

Everything here is model-agnostic: turning architectures into token tensors, building a module
with parameters drawn from an owned ``torch.Generator`` (never the global RNG), masked
decoding with bounded repair, minibatch training, target normalisation and SemiNAS's
pseudo-labelled training set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from raynas._errors import InvalidArchitectureError
from raynas.spaces import Arch, Space

#: ``decode(rows, greedy, temperature) -> tokens (len(rows), T)``; rows index the latent batch.
DecodeFn = Callable[[torch.Tensor, bool, float], torch.Tensor]


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA where available, else CPU; anything else goes to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads, then restore the previous count.

    ``torch.set_num_threads`` is process-wide, so library code only changes it inside this
    context (a study runs in one single-CPU Ray trial; small LSTMs gain nothing from more
    threads and lose a lot when the cores are shared). ``None`` leaves the setting alone.
    """
    old = torch.get_num_threads()
    if not n or n == old:
        yield
        return
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_adam(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with the fused kernel (several times faster for many small tensors on CPU)."""
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device without the fused kernel
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from the searcher's numpy generator."""
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def build_module(factory: Callable[[], nn.Module], device: torch.device, gen: torch.Generator) -> nn.Module:
    """Build ``factory()`` on ``device`` with every parameter drawn from ``gen``.

    The module's own initialisation runs inside ``torch.random.fork_rng`` so that the global RNG
    is left exactly as it was; then every parameter is redrawn from ``gen``: embeddings from
    ``N(0, 1)`` (``nn.Embedding``'s rule), everything else uniformly from
    ``(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's LSTM rule).
    """
    with torch.random.fork_rng(devices=[]):
        module = factory()
    module = module.to(device)
    embeddings = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    with torch.no_grad():
        for p in module.parameters():
            if id(p) in embeddings:  # nn.Embedding's own rule: N(0, 1)
                cpu = torch.empty(p.shape).normal_(0.0, 1.0, generator=gen)
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
                bound = 1.0 / math.sqrt(max(1, fan_in))
                cpu = torch.empty(p.shape).uniform_(-bound, bound, generator=gen)
            p.copy_(cpu.to(device))
    return module


def dropout(x: torch.Tensor, p: float, training: bool, gen: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout whose mask comes from ``gen`` (``F.dropout`` would use the global RNG)."""
    if not training or p <= 0.0 or gen is None:
        return x
    keep = torch.rand(x.shape, generator=gen).to(x.device) >= p
    return x * keep / (1.0 - p)


def sequence_of(space: Space, arch: Arch) -> list[int]:
    """The controller's encoding of ``arch``: ``space.to_full_sequence`` (a decoder never has to
    stop early)."""
    return space.to_full_sequence(arch)


#: Rows per forward pass when a controller encodes many cells (pseudo-labelling ``M`` cells).
#: An LSTM over a few hundred rows keeps its working set in cache: 512 encodes NB101's
#: 27-token cells 2.6x faster than 4,096 on one CPU thread, with the same results.
ENCODE_CHUNK = 512


def encode_archs(space: Space, archs: Sequence[Arch], device: torch.device | None = None) -> torch.Tensor:
    """Token tensor ``(B, T)`` of :func:`sequence_of` each architecture."""
    seqs = [sequence_of(space, a) for a in archs]
    out = torch.tensor(seqs, dtype=torch.long).reshape(len(seqs), space.seq_length)
    return out if device is None else out.to(device)


def mask_tensor(space: Space, n_probe: int = 500) -> torch.Tensor:
    """The decoder's allowed tokens ``(T, V)``: ``space.token_mask()`` within the encodings' support.

    Tokens the space allows at a position but that never occur there in :func:`sequence_of` of
    ``n_probe`` sampled cells (drawn with a fixed private generator) are masked too; e.g. an early
    NAS-Bench-101 output token, which full sequences never hold. Padding (token 0) is never
    allowed, and a position whose support is empty keeps the space's mask.
    """
    mask = np.asarray(space.token_mask(), dtype=bool).copy()
    if mask.shape != (space.seq_length, space.vocab_size):
        raise ValueError(
            f"{space.name}: token_mask() has shape {mask.shape}, expected "
            f"({space.seq_length}, {space.vocab_size})"
        )
    rng = np.random.default_rng(0)
    seqs = np.array([sequence_of(space, space.sample(rng)) for _ in range(n_probe)])  # (n, T)
    support = np.zeros_like(mask)
    for pos in range(seqs.shape[1]):
        support[pos, np.unique(seqs[:, pos])] = True
    narrowed = mask & support
    keep = narrowed[:, 1:].any(axis=1)
    mask[keep] = narrowed[keep]
    mask[:, 0] = False
    return torch.as_tensor(mask)


def pick_tokens(
    logits: torch.Tensor, greedy: bool, temperature: float, gen: torch.Generator | None
) -> torch.Tensor:
    """Greedy or sampled tokens ``(B,)`` from masked logits ``(B, V)`` (masked entries are -inf)."""
    if greedy or gen is None:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float().cpu() / max(temperature, 1e-6), dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1).to(logits.device)


@dataclass
class DecodeStats:
    """How many decodings were valid straight away, after repair, or rejected."""

    decoded: int = 0
    greedy_valid: int = 0
    repaired: int = 0
    rejected: int = 0

    @property
    def validity_rate(self) -> float:
        """Fraction of decodings that yielded a valid cell (greedy or repaired)."""
        return 1.0 if self.decoded == 0 else (self.greedy_valid + self.repaired) / self.decoded

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def decode_archs(
    space: Space,
    decode: DecodeFn,
    n: int,
    repairs: int = 4,
    stats: DecodeStats | None = None,
    width: int = 8,
) -> list[Arch | None]:
    """Decode ``n`` latents into architectures, repairing invalid ones by sampling.

    Greedy decoding comes first. A token sequence that ``space.from_sequence`` rejects (masked
    decoding keeps every token legal, but tokens can still clash: a NAS-Bench-101 graph may be
    disconnected or have too many edges, a DARTS node may read the same input twice) is redrawn
    from the masked distribution: ``width`` samples per attempt at temperatures 1, 2, 4, ...,
    at most ``repairs`` attempts, keeping the first valid sample. What is still invalid then is
    rejected (``None``).
    """
    stats = stats if stats is not None else DecodeStats()
    out: list[Arch | None] = [None] * n
    todo = torch.arange(n)
    for attempt in range(repairs + 1):
        if len(todo) == 0:
            break
        rows = todo if attempt == 0 else todo.repeat_interleave(width)
        tokens = decode(rows, attempt == 0, float(2 ** max(0, attempt - 1))).cpu().tolist()
        for row, seq in zip(rows.tolist(), tokens):
            if out[row] is not None:
                continue
            try:
                arch = space.from_sequence(seq)
                space.validate(arch)
            except InvalidArchitectureError:
                continue
            out[row] = arch
            if attempt == 0:
                stats.greedy_valid += 1
            else:
                stats.repaired += 1
        todo = torch.tensor([r for r in todo.tolist() if out[r] is None], dtype=torch.long)
    stats.decoded += n
    stats.rejected += len(todo)
    return out


def minibatches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering ``range(n)`` once."""
    order = torch.randperm(n, generator=gen)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[dict[str, torch.Tensor], torch.Generator], torch.Tensor],
    data: dict[str, torch.Tensor],
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    grad_bound: float = 5.0,
) -> float:
    """Minibatch training for ``epochs`` passes over ``data``; returns the last epoch's mean loss.

    Args:
        model: The controller (put in train mode here).
        optimizer: Its optimizer.
        loss_fn: ``loss_fn(batch, gen) -> scalar`` where ``batch`` slices every tensor of ``data``.
        data: Equal-length tensors on the model's device.
        epochs: Passes over the data.
        batch_size: Rows per step.
        gen: Generator for shuffling (and any noise inside ``loss_fn``).
        grad_bound: Gradient-norm clip (NAO/SemiNAS use 5).
    """
    n = len(next(iter(data.values())))
    model.train()
    last = float("nan")
    device = next(iter(data.values())).device
    for _ in range(epochs):
        total, count = 0.0, 0
        for idx in minibatches(n, batch_size, gen):
            idx = idx.to(device)
            batch = {k: v[idx] for k, v in data.items()}
            loss = loss_fn(batch, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), grad_bound)
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        last = total / max(1, count)
    model.eval()
    return last


@dataclass
class Normaliser:
    """z-score of a target (optionally of its log) with the lower tail clipped.

    With ``robust=True`` the centre and scale are the median and the normal-consistent median
    absolute deviation: accuracy tables have a long lower tail (diverged cells near chance) that
    would otherwise inflate the standard deviation and squeeze the good cells, which are the
    ones a search must tell apart, into a narrow band. Clipping at ``-clip`` keeps those few
    cells from dominating the squared error.
    """

    mean: float = 0.0
    std: float = 1.0
    log: bool = False
    clip: float | None = None

    @classmethod
    def fit(
        cls, values: Sequence[float], log: bool = False, clip: float | None = None, robust: bool = False
    ) -> Normaliser:
        v = np.asarray(values, dtype=np.float64)
        if log:
            v = np.log(np.maximum(v, 1e-12))
        if len(v) == 0:
            return cls(0.0, 1.0, log, clip)
        if robust:
            centre = float(np.median(v))
            scale = 1.4826 * float(np.median(np.abs(v - centre)))
            if scale <= 1e-12:
                scale = float(v.std())
        else:
            centre, scale = float(v.mean()), float(v.std())
        return cls(centre, scale if scale > 1e-12 else 1.0, log, clip)

    def encode(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if self.log:
            v = np.log(np.maximum(v, 1e-12))
        z = (v - self.mean) / self.std
        return np.maximum(z, -self.clip) if self.clip is not None else z

    def decode(self, z: np.ndarray | float) -> np.ndarray:
        v = np.asarray(z, dtype=np.float64) * self.std + self.mean
        return np.exp(v) if self.log else v

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_unlabeled(
    space: Space,
    rng: np.random.Generator,
    m: int,
    exclude: set[tuple[int, ...]],
    candidates: Sequence[Arch] | None = None,
) -> list[Arch]:
    """Up to ``m`` distinct cells (by token sequence) not in ``exclude``, drawn with ``rng``.

    SemiNAS's unlabelled set: random cells of the space (or of the partial table's candidates).
    At most ``3 m`` draws are made, so small spaces return fewer.
    """
    out: list[Arch] = []
    seen = set(exclude)
    for _ in range(3 * m):
        if len(out) >= m:
            break
        if candidates is not None:
            arch = candidates[int(rng.integers(len(candidates)))]
        else:
            arch = space.sample(rng)
        seq = tuple(space.to_sequence(arch))
        if seq in seen:
            continue
        seen.add(seq)
        out.append(arch)
    return out


def tile(x: torch.Tensor, times: int) -> torch.Tensor:
    """``times`` copies of ``x`` stacked along the first axis (SemiNAS's up-sampling)."""
    return x.repeat((times,) + (1,) * (x.dim() - 1))


def fit_semi_supervised(
    fit: Callable[[dict[str, torch.Tensor], int], float],
    labelled: dict[str, torch.Tensor],
    make_synthetic: Callable[[], dict[str, torch.Tensor] | None],
    pretrain_epochs: int,
    epochs: int,
    up_sample: int,
) -> float:
    """SemiNAS's schedule: train on the labelled cells, pseudo-label, train on both.

    Args:
        fit: ``fit(data, epochs) -> last loss``.
        labelled: Training tensors of the evaluated cells.
        make_synthetic: Called after the first phase; returns the pseudo-labelled tensors of the
            unlabelled cells (same keys), or None to skip the second phase (NAO).
        pretrain_epochs: Epochs on the labelled cells alone.
        epochs: Epochs on ``up_sample`` copies of the labelled cells plus the synthetic ones.
        up_sample: SemiNAS's up-sampling ratio (10) of the labelled cells.

    Returns:
        The mean loss of the last epoch.
    """
    loss = fit(labelled, pretrain_epochs) if pretrain_epochs > 0 else float("nan")
    synthetic = make_synthetic() if epochs > 0 else None
    if not synthetic:
        return loss
    data = {k: torch.cat([tile(labelled[k], up_sample), synthetic[k]]) for k in labelled}
    return fit(data, epochs)


def tensor_state(state: Any) -> Any:
    """Deep copy of a (nested) state dict with every tensor detached onto the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu").clone()
    if isinstance(state, dict):
        return {k: tensor_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(tensor_state(v) for v in state)
    return state
