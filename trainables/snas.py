"""SNAS: stochastic NAS with a Gumbel-softmax supernet and a local resource constraint.

Xie et al., ICLR 2019, "SNAS: Stochastic Neural Architecture Search" (``../shared/papers``).
Two spaces: NAS-Bench-201 (6 edges, 5 ops, all cells share one choice) and the paper's own,
DARTS's (Section 3.1: 14 edges per cell over 8 ops, a normal and a reduction cell, so 28 rows of
``alpha``; the search network of DARTS, 8 cells of 16 channels, reductions at 1/3 and 2/3).
Every edge ``e`` of the cell holds all ops; at each step it mixes them with a concrete
(Gumbel-softmax) sample of its one-hot decision (the paper's Eq. 2):

    Z_e = softmax((log alpha_e + G_e) / temperature),   G_e = -log(-log(U)),  U ~ Uniform(0, 1)

so that the loss is differentiable in ``alpha`` (the search gradient) as well as in the
weights. The zero op is one of the candidates, so an edge can drop. The temperature anneals
from 1 to 0.03 over the search (the paper: "steadily annealed to be close to zero"), where
``Z`` is nearly one-hot and training a sample is training a child network.

Single-level optimization (Section 3.1): weights and ``alpha`` learn from the same training
batches in the same backward pass; weights with momentum SGD (lr 0.025, cosine to 0,
momentum 0.9, weight decay 3e-4), ``alpha`` with Adam (lr 3e-4, betas (0.5, 0.999), weight
decay 1e-3), batch 64, 16 channels (Appendix G.1, DARTS's settings).

Resource constraint (Section 2.4, Eqs. 9-10, Appendix F): the cost of a child is linear in the
one-hot decisions, ``C(Z) = sum_e sum_k Z_ek c_ek``, so its expectation decomposes into a local
penalty per edge. ``c_ek`` combines the three criteria of Appendix F for op ``k`` at edge
``e``, summed over the cells that share the edge: parameter size, FLOPs and memory access cost
(MAC: input and output feature maps plus kernel weights, Eq. 37; pooling and skip access the
same feature maps, Eq. 40, and differ in FLOPs, Eqs. 38-39). Each criterion is divided by its
largest value over the ops of the edge, so the three weigh alike. ``C`` is not differentiable,
and its gradient is the policy gradient of Eq. 34: ``lambda * c_e(k*) * grad log p(k*)`` for
the op ``k*`` that the sample chose at each edge (a Monte Carlo estimate of the sum-product
form). Levels: ``mild``, ``moderate``, ``aggressive`` (:data:`LEVELS`) or an explicit lambda.

The child is the argmax of ``alpha`` per edge, so a zero op that wins removes its edge. In
NAS-Bench-201 that is a cell of the space (``none`` on the edge); in DARTS a node then keeps any
number of its inputs (0 to all), so the child is a
:class:`~raynas.spaces._darts_nodes.NodeGenotype`, which ``DartsNetwork`` (hence ``raynas train
--genotype``) builds as it is, a node left without edges giving zeros. Its
validation accuracy with the search's weights, without any finetuning, is reported next to
the search's own (a sample per batch at the final temperature): the paper's Table 1 claim is
that the two stay close.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from raynas._errors import RaynasError, check_positive
from raynas.spaces._darts_genotype import CELLS, N_NODES
from raynas.spaces._darts_genotype import OPS as DARTS_OPS
from raynas.spaces._darts_nodes import NodeGenotype
from raynas.spaces._nasbench201 import EDGES
from raynas.spaces._nasbench201 import OPS as OP_NAMES
from raynas.trainables.data import Splits, prepare_batch
from raynas.trainables.networks._ops import Zero
from raynas.trainables.networks._supernet import build_supernet, supernet_path
from raynas.trainables.networks._supernet_darts import N_ROWS, edge_index
from raynas.trainables.train import private_rng, report_with_state, resolve_device, restored_state

#: The constraint levels and their lambda (the weight of the normalised cost per edge).
LEVELS = {"none": 0.0, "mild": 0.02, "moderate": 0.1, "aggressive": 0.5}
CHECKPOINT_FILE = "snas.pt"
STATE_VERSION = 1
SNAS_SPACES = ("nasbench201", "darts")
#: Rows (edges) and columns (ops) of ``alpha`` per space.
ALPHA_SHAPE = {"nasbench201": (len(EDGES), len(OP_NAMES)), "darts": (N_ROWS, len(DARTS_OPS))}


@dataclass(frozen=True)
class SNASConfig:
    """One SNAS search. Defaults: the paper's (Appendix G.1), except the epochs (150 there).

    Attributes:
        space: The cell space (``nasbench201`` or ``darts``).
        level: Resource-constraint level (a key of :data:`LEVELS`), or None with ``lam``.
        lam: Explicit lambda of the resource penalty; overrides ``level``.
        epochs: Search epochs; the temperature anneals over them.
        batch_size: Batch size (64).
        lr: Initial SGD learning rate of the weights (0.025, cosine to ``lr_min``).
        lr_min: Final learning rate of the weights (0).
        momentum: SGD momentum (0.9).
        weight_decay: Weight decay of the weights (3e-4).
        arch_lr: Adam learning rate of alpha (3e-4).
        arch_betas: Adam betas of alpha ((0.5, 0.999)).
        arch_weight_decay: Weight decay of alpha (1e-3).
        temperature: Initial temperature (1.0).
        temperature_min: Final temperature (0.03).
        grad_clip: Gradient-norm clip of the weights (5, as DARTS).
        warmup_epochs: First epochs in which only the weights learn (alpha stays uniform), so
            that parameter-free ops do not win merely because untrained convs are poor (0: the
            paper's single-level search from the first step).
        channels: Stem channels ``C`` (16).
        cells_per_stage: NAS-Bench-201: cells per stage ``N`` of the search network (5: the benchmark's).
        layers: DARTS: cells of the search network (8: DARTS's and SNAS's search), with
            reductions at 1/3 and 2/3; at least 3.
        seed: Seeds the weights, alpha, the data order and the Gumbel noise.
        device: "cpu", "cuda" or "auto".
    """

    space: str = "nasbench201"
    level: str | None = "mild"
    lam: float | None = None
    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    temperature: float = 1.0
    temperature_min: float = 0.03
    grad_clip: float | None = 5.0
    warmup_epochs: int = 0
    channels: int = 16
    cells_per_stage: int = 5
    layers: int = 8
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.space not in SNAS_SPACES:
            raise ValueError(f"SNAS searches {' and '.join(SNAS_SPACES)}, not {self.space!r}")
        if self.lam is None and self.level not in LEVELS:
            raise ValueError(f"unknown constraint level {self.level!r}; use one of {', '.join(LEVELS)} or lam=")
        if self.lam is not None and self.lam < 0:
            raise ValueError(f"lam must not be negative, got {self.lam}")
        for name in ("epochs", "batch_size", "lr", "arch_lr", "channels", "cells_per_stage", "layers"):
            check_positive(name, getattr(self, name))
        if self.space == "darts" and self.layers < 3:
            raise ValueError(f"layers must be at least 3 (a normal cell and two reductions), got {self.layers}")
        if not 0 < self.temperature_min <= self.temperature:
            raise ValueError(f"need 0 < temperature_min <= temperature, got {self.temperature_min}, {self.temperature}")

    def network_options(self) -> dict[str, int]:
        """Options of the search network, and of the child's stand-alone network."""
        if self.space == "darts":
            return {"channels": self.channels, "layers": self.layers}
        return {"channels": self.channels, "cells_per_stage": self.cells_per_stage}

    @property
    def penalty(self) -> float:
        """Lambda of the resource penalty."""
        return float(self.lam) if self.lam is not None else LEVELS[self.level]  # type: ignore[index]

    def temperature_at(self, epoch: int) -> float:
        """Temperature of epoch ``epoch`` (0-based): exponential from ``temperature`` to ``temperature_min``."""
        if self.epochs == 1:
            return self.temperature_min
        return self.temperature * (self.temperature_min / self.temperature) ** (epoch / (self.epochs - 1))


def gumbel_softmax(log_alpha: torch.Tensor, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """A concrete sample per row: ``softmax((log_alpha + G) / temperature)`` (Eq. 2), noise from ``gen``."""
    u = torch.rand(log_alpha.shape, generator=gen).clamp_(1e-10, 1.0 - 1e-10).to(log_alpha.device)
    return torch.softmax((log_alpha - torch.log(-torch.log(u))) / temperature, dim=-1)


_POOLS = (nn.AvgPool2d, nn.MaxPool2d)


@torch.no_grad()
def edge_costs(model: nn.Module, image_size: int) -> torch.Tensor:
    """Local costs ``c_ek`` (E, K): params + FLOPs + MAC of op ``k`` summed over the cells of edge ``e``.

    Measured on the supernet itself (``model.mixed_edges()``: each mixed edge and its row of
    ``alpha``), with one forward pass of a zero image through every op. Appendix F, per op:
    conv layers count their weights as params (Eq. 35) and their multiply-adds as FLOPs
    (Eq. 36); their MAC is input plus output feature map plus weights (Eq. 37), summed over
    the op's convs (a separable conv has four). A pooling op's FLOPs are ``k^2`` per output
    (Eq. 38), a skip's none (Eq. 39); both access their input and output maps (Eq. 40). The
    zero op costs nothing. Each criterion is divided by its largest value over the ops of the
    edge, so the three weigh alike. In NAS-Bench-201 every edge of a cell sees one resolution,
    so the rows are equal; in DARTS the edges of a reduction cell that read the cell's inputs
    have stride 2 (and a skip there is a ``FactorizedReduce``).
    """
    edges = list(model.mixed_edges())
    shape = (max(row for row, _ in edges) + 1, len(edges[0][1].ops))
    params, flops, conv_mac, io_mac = (torch.zeros(shape) for _ in range(4))
    has_conv = torch.zeros(shape, dtype=torch.bool)
    handles = []

    def counted(at: tuple[int, int], m: nn.Module):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                weights = module.weight.numel()
                params[at] += weights  # Eq. 35
                flops[at] += output[0].numel() * weights // module.out_channels  # Eq. 36
                conv_mac[at] += inputs[0][0].numel() + output[0].numel() + weights  # Eq. 37
            elif isinstance(module, _POOLS):
                k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
                flops[at] += output[0].numel() * k * k  # Eq. 38
            if module is m:  # the op itself: its input and output feature maps (Eq. 40)
                io_mac[at] += inputs[0][0].numel() + output[0].numel()

        return hook

    for row, edge in edges:
        for k, op in enumerate(edge.ops):
            if isinstance(op, Zero):
                continue
            has_conv[row, k] |= any(isinstance(m, nn.Conv2d) for m in op.modules())
            for m in op.modules():
                if m is op or isinstance(m, (nn.Conv2d, *_POOLS)):
                    handles.append(m.register_forward_hook(counted((row, k), op)))
    was_training = model.training
    try:
        model.eval()
        image = torch.zeros(1, model.stem[0].in_channels, image_size, image_size,
                            device=next(model.parameters()).device)
        model(image, torch.ones(shape, device=image.device))  # every op of every edge runs
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    mac = torch.where(has_conv, conv_mac, io_mac)
    return sum(v / v.max(dim=1, keepdim=True).values.clamp(min=1e-12) for v in (params, flops, mac))


def search(
    splits: Splits,
    config: SNASConfig | None = None,
    state: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one SNAS search on ``splits.train``; returns the final state (see :func:`result_of`).

    Args:
        splits: The data: training batches for weights and alpha, ``splits.val`` for the accuracies.
        config: The search settings.
        state: A state passed to ``on_epoch`` to resume from (same settings): the search goes on
            exactly as if it had not stopped.
        on_epoch: Called after every epoch with the metrics (``epoch``, ``temperature``,
            ``train_loss``, ``cost``: the expected normalised cost, ``entropy``: mean entropy of
            the edges' distributions) and the state to checkpoint.
    """
    cfg = config or SNASConfig()
    device = resolve_device(cfg.device)
    with private_rng(cfg.seed):
        model = build_supernet(cfg.space, splits.num_classes, splits.input_shape[0], **cfg.network_options())
    model = model.to(device)
    log_alpha = nn.Parameter(torch.zeros(ALPHA_SHAPE[cfg.space], device=device))  # uniform start
    w_opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    a_opt = torch.optim.Adam([log_alpha], lr=cfg.arch_lr, betas=cfg.arch_betas, weight_decay=cfg.arch_weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    costs = edge_costs(model, splits.input_shape[-1]).to(device)
    curve: list[dict[str, Any]] = []
    start = 0
    if state is not None:
        if state.get("version") != STATE_VERSION or state["config"] != _config_dict(cfg):
            raise RaynasError("the SNAS state was written by a search with other settings; resume with the same ones")
        model.load_state_dict(state["model"])
        with torch.no_grad():
            log_alpha.copy_(state["log_alpha"])
        w_opt.load_state_dict(state["w_opt"])
        a_opt.load_state_dict(state["a_opt"])
        gen.set_state(state["generator"])
        curve, start = [dict(m) for m in state["curve"]], int(state["epoch"])
    x_all, y_all = splits.train.tensors  # type: ignore[attr-defined]
    n = len(y_all)
    steps = math.ceil(n / cfg.batch_size)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start, cfg.epochs):
        model.train()
        tau = cfg.temperature_at(epoch)
        began, total, seen, cost_sum = time.perf_counter(), 0.0, 0, 0.0
        order = torch.randperm(n, generator=gen)
        for step in range(steps):
            t = (epoch * steps + step) / (cfg.epochs * steps)
            for group in w_opt.param_groups:
                group["lr"] = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * t))
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = prepare_batch(x_all[idx], splits, train=True, generator=gen).to(device)
            y = y_all[idx].to(device)
            log_p = torch.log_softmax(log_alpha, dim=-1)
            z = gumbel_softmax(log_p, tau, gen)  # (E, K), differentiable in alpha
            loss = loss_fn(model(x, z), y)
            chosen = z.detach().argmax(dim=-1)  # the sampled one-hot decision per edge
            local = costs.gather(1, chosen[:, None]).squeeze(1)  # (E,)
            # Eq. 34: the policy gradient of the expected local cost (score function, sample k*).
            penalty = cfg.penalty * (local * log_p.gather(1, chosen[:, None]).squeeze(1)).sum()
            w_opt.zero_grad(set_to_none=True)
            a_opt.zero_grad(set_to_none=True)
            (loss + penalty).backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            w_opt.step()
            if epoch >= cfg.warmup_epochs:
                a_opt.step()
            if not math.isfinite(loss.item()):
                raise RaynasError(f"SNAS diverged at epoch {epoch + 1}: loss {loss.item()}; lower lr")
            total += loss.item() * len(y)
            seen += len(y)
            cost_sum += float(local.sum())
        probs = torch.softmax(log_alpha.detach(), dim=-1)
        entropy = float(-(probs * probs.clamp(min=1e-12).log()).sum(dim=-1).mean())
        curve.append({"epoch": epoch + 1, "temperature": tau, "train_loss": total / seen,
                      "cost": cost_sum / steps, "entropy": entropy,
                      "epoch_time": time.perf_counter() - began})
        state = {"version": STATE_VERSION, "config": _config_dict(cfg), "dataset": splits.name,
                 "num_classes": splits.num_classes, "input_shape": list(splits.input_shape),
                 "model": model.state_dict(), "log_alpha": log_alpha.detach().cpu().clone(),
                 "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(), "generator": gen.get_state(),
                 "epoch": epoch + 1, "curve": curve}
        if on_epoch is not None:
            on_epoch(curve[-1], state)
    if state is None:
        raise RaynasError("the SNAS search has no epochs left")
    return state


def _config_dict(cfg: SNASConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["arch_betas"] = list(d["arch_betas"])
    d.pop("device")
    return d


def derive(log_alpha: torch.Tensor, space: str = "nasbench201") -> tuple[str, ...] | NodeGenotype:
    """The child: the most likely op of every edge (a zero op that wins drops its edge).

    NAS-Bench-201: the six op names. DARTS: a :class:`NodeGenotype` whose nodes keep the edges
    whose argmax is not ``none``, however many (the paper's Figure 5).
    """
    best = log_alpha.argmax(dim=-1).tolist()
    if space == "nasbench201":
        return tuple(OP_NAMES[k] for k in best)
    per_cell = len(best) // len(CELLS)
    cells = []
    for c in range(len(CELLS)):
        ops = [[DARTS_OPS[best[c * per_cell + edge_index(n, inp)]] for inp in range(n + 2)] for n in range(N_NODES)]
        cells.append(tuple(tuple((op, inp) for inp, op in enumerate(node) if op != "none") for node in ops))
    return NodeGenotype(*cells)


def genotype_json(genotype: tuple[str, ...] | NodeGenotype) -> Any:
    """The JSON form of a derived child: NAS-Bench-201 a list of ops, DARTS its nodes' edges."""
    return genotype.to_json() if isinstance(genotype, NodeGenotype) else list(genotype)


@torch.no_grad()
def _accuracy(model: nn.Module, splits: Splits, choice, gen: torch.Generator | None = None,
              temperature: float | None = None, log_alpha: torch.Tensor | None = None) -> float:
    model.eval()
    x_val, y_val = splits.val.tensors  # type: ignore[attr-defined]
    correct = 0
    for start in range(0, len(y_val), 256):
        x = prepare_batch(x_val[start:start + 256], splits, train=False)
        if choice is None:  # a concrete sample per batch at the final temperature
            choice_now = gumbel_softmax(torch.log_softmax(log_alpha, -1), temperature, gen)
        else:
            choice_now = choice
        correct += int((model(x, choice_now).argmax(1) == y_val[start:start + 256]).sum())
    return 100.0 * correct / len(y_val)


def result_of(state: dict[str, Any], splits: Splits) -> dict[str, Any]:
    """What a search found: genotype, its params and FLOPs, and the two accuracies.

    ``search_val_accuracy``: the supernet on the validation set, one concrete sample per batch
    at the final temperature (as the search trained it). ``child_val_accuracy``: the derived
    child (argmax per edge) with the same weights and batch-norm statistics, no finetuning.
    ``params`` (M) and ``flops`` (M) are those of the child's stand-alone network at the search
    network's width and input size.
    """
    from raynas.trainables.networks import network_cost

    cfg = state["config"]
    config = SNASConfig(**{**cfg, "arch_betas": tuple(cfg["arch_betas"])})
    model = build_supernet(config.space, state["num_classes"], state["input_shape"][0], **config.network_options())
    model.load_state_dict(state["model"])
    log_alpha = state["log_alpha"]
    child = derive(log_alpha, config.space)
    final_tau = config.temperature_at(cfg["epochs"] - 1)
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    search_acc = _accuracy(model, splits, None, gen, final_tau, log_alpha)
    child_acc = _accuracy(model, splits, supernet_path(config.space, child))
    size = network_cost(config.space, child, state["num_classes"], state["input_shape"][-1],
                        **config.network_options())
    return {
        "genotype": child, **size,
        "search_val_accuracy": search_acc, "child_val_accuracy": child_acc,
        "alpha": torch.softmax(log_alpha, -1).tolist(),
    }


def snas_trainable(config: dict[str, Any], data: Any, base: SNASConfig) -> None:
    """Ray Tune function trainable: one search (``config``: ``level`` or ``lam``, ``seed``).

    Checkpoints after every epoch and reports the epoch's metrics; after the last epoch it also
    reports the result (:func:`result_of`, the genotype as JSON). A restored trial goes on from
    its last checkpoint with the result an uninterrupted search would have.
    """
    import ray

    splits = ray.get(data) if isinstance(data, ray.ObjectRef) else data
    config = config.get("trial", config)
    overrides = {k: config[k] for k in ("level", "lam", "seed") if k in config}
    cfg = dataclasses.replace(base, **overrides)
    state = restored_state(CHECKPOINT_FILE)

    def report(metrics: dict[str, Any], state_now: dict[str, Any]) -> None:
        extra = {}
        if metrics["epoch"] == cfg.epochs:
            found = result_of(state_now, splits)
            extra = {**{k: v for k, v in found.items() if k not in ("genotype", "alpha")},
                     "genotype": json.dumps(genotype_json(found["genotype"])), "alpha": json.dumps(found["alpha"])}
        report_with_state({**metrics, "lambda": cfg.penalty, **extra}, state_now, CHECKPOINT_FILE)

    if state is not None and int(state["epoch"]) >= cfg.epochs:
        return
    search(splits, cfg, state=state, on_epoch=report)
