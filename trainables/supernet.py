"""Weight-sharing evaluation: train one supernet, then score any cell in well under a second.

Training follows SPOS (Guo et al., 2020, "Single Path One-Shot Neural Architecture Search with
Uniform Sampling"): at every step one path, an op per edge drawn uniformly, is trained on the
batch; in expectation every op of every edge gets the same share of updates, so that the
shared weights rank paths without favouring any. The recipe (SGD with Nesterov momentum, cosine
schedule, weight decay, the data pipeline) is :class:`~raynas.trainables.train.TrainConfig`'s,
the same as stand-alone training.

Evaluating a cell (:class:`SupernetEvaluator`) does what the SPOS paper prescribes for its
search: the batch-norm statistics that training accumulated belong to a mix of paths, so they
are recomputed for the cell on a few training batches (a fixed set, so the evaluation is
deterministic for a fixed checkpoint), then the cell's validation accuracy is measured with
the shared weights, unchanged. Every searcher then searches over the supernet exactly as over a
tabular benchmark: the evaluator follows :class:`~raynas.trainables.evaluator.Evaluator`.

How far to trust the ranking: :func:`kendall_tau` between supernet and stand-alone accuracies
on a sample of cells.

Example:
    >>> from raynas.trainables.data import load_dataset
    >>> splits = load_dataset("digits", seed=0, channels=3)
    >>> cfg = SupernetConfig(epochs=1, channels=4, cells_per_stage=1)
    >>> state, curve = train_supernet(splits, cfg)  # doctest: +SKIP
    >>> ev = SupernetEvaluator(state, splits)  # doctest: +SKIP
    >>> ev.evaluate(("nor_conv_3x3",) * 6)["val_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from raynas._errors import RaynasError, check_positive
from raynas.spaces import Arch, get_space
from raynas.trainables.data import Splits, prepare_batch
from raynas.trainables.networks import network_cost
from raynas.trainables.networks._supernet import build_supernet, sample_path, supernet_path
from raynas.trainables.train import (
    TrainConfig,
    load_checkpoint,
    private_rng,
    report_with_state,
    resolve_device,
    restored_state,
    save_checkpoint,
)

CHECKPOINT_FILE = "supernet.pt"
STATE_VERSION = 1
SHARED_STATE_VERSION = 1  # SharedWeightsEvaluator.get_state
#: Spaces with a supernet.
SUPERNET_SPACES = ("nasbench201", "nasbench_macro", "darts")


@dataclass(frozen=True)
class SupernetConfig:
    """A supernet and how to train it.

    Attributes:
        space: The search space (``nasbench201``, ``nasbench_macro`` or ``darts``).
        channels: Stem channels (None: the benchmark network's, 16 for NAS-Bench-201 and 32 for
            NAS-Bench-Macro; DARTS: the initial channels ``C`` of its search network, 16).
        cells_per_stage: NAS-Bench-201 only: cells per stage ``N`` (None: 5, the benchmark's).
        network: Further options of the space's network (e.g. ``head_channels`` of NAS-Bench-Macro,
            ``layers`` of DARTS: 8 cells by default, DARTS's search network).
        train: The training recipe (epochs, batch size, SGD settings); its defaults are
            NAS-Bench-201's stand-alone recipe, so pass the epochs you can afford.
        epochs: Shorthand for ``train.epochs`` (None: keep ``train``'s).
        seed: Seeds the initial weights, the data order and the sampled paths.
    """

    space: str = "nasbench201"
    channels: int | None = None
    cells_per_stage: int | None = None
    network: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=50, device="cpu"))
    epochs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.space not in SUPERNET_SPACES:
            raise ValueError(f"no supernet for space {self.space!r}; supernets exist for {', '.join(SUPERNET_SPACES)}")
        for name in ("channels", "cells_per_stage"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        if self.space != "nasbench201" and self.cells_per_stage is not None:
            raise ValueError(f"cells_per_stage is a NAS-Bench-201 setting; {self.space} has "
                             f"{'fixed stages' if self.space == 'nasbench_macro' else 'network layers='}")
        if self.epochs is not None:
            object.__setattr__(self, "train", dataclasses.replace(self.train, epochs=int(self.epochs)))
            object.__setattr__(self, "epochs", None)

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        """The supernet, its initial weights drawn from ``seed``."""
        with private_rng(self.seed):
            return build_supernet(self.space, num_classes, in_channels, **self.network_options())

    def network_options(self) -> dict[str, Any]:
        """Options of the space's network (stand-alone and supernet alike)."""
        if self.space == "nasbench201":
            return {"channels": self.channels or 16, "cells_per_stage": self.cells_per_stage or 5, **self.network}
        if self.space == "darts":  # DARTS's search network: 16 channels, 8 cells
            return {"channels": self.channels or 16, "layers": 8, **self.network}
        return {**({"init_channels": self.channels} if self.channels else {}), **self.network}


def _lr(cfg: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """Cosine schedule over all steps, from ``lr`` to ``lr_min``."""
    t = (epoch * steps + step) / max(1, cfg.epochs * steps)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * t))


def train_supernet(
    splits: Splits,
    config: SupernetConfig | None = None,
    state: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, float], dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train a supernet with uniform single-path sampling; resumable from any epoch's state.

    Args:
        splits: The data; the supernet trains on ``splits.train``.
        config: The supernet and its recipe.
        state: A state passed to ``on_epoch`` (or read with :func:`load_state_file`) to go on from.
        on_epoch: Called after every epoch with the metrics (``epoch``, ``train_loss``,
            ``train_accuracy`` of the sampled paths, ``steps_per_s``) and the state to checkpoint.

    Returns:
        The final state (weights, optimizer, generators, curve) and the curve, one dict per epoch.
        An interrupted run resumed from its last state gives the same weights as an
        uninterrupted one.
    """
    cfg = config or SupernetConfig()
    tc = cfg.train
    device = resolve_device(tc.device)
    in_channels = splits.input_shape[0]
    model = cfg.build(splits.num_classes, in_channels).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay,
                          nesterov=tc.nesterov and tc.momentum > 0)
    gen = torch.Generator().manual_seed(cfg.seed)
    curve: list[dict[str, float]] = []
    start = 0
    if state is not None:
        _check_state(state, cfg, splits)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        curve = [dict(m) for m in state["curve"]]
        start = int(state["epoch"])
    x_all, y_all = splits.train.tensors  # type: ignore[attr-defined]
    n = len(y_all)
    steps = math.ceil(n / tc.batch_size)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=tc.label_smoothing)
    for epoch in range(start, tc.epochs):
        model.train()
        began, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        order = torch.randperm(n, generator=gen)
        for step in range(steps):
            idx = order[step * tc.batch_size:(step + 1) * tc.batch_size]
            x = prepare_batch(x_all[idx], splits, train=True, generator=gen).to(device)
            y = y_all[idx].to(device)
            for group in opt.param_groups:
                group["lr"] = _lr(tc, epoch, step, steps)
            logits = model(x, sample_path(gen, cfg.space))
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            if not math.isfinite(loss.item()):
                raise RaynasError(f"supernet training diverged at epoch {epoch + 1}, step {step}: loss "
                                  f"{loss.item()}; lower the learning rate or set grad_clip")
            total += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        elapsed = time.perf_counter() - began
        curve.append({"epoch": epoch + 1, "train_loss": total / seen, "train_accuracy": 100.0 * correct / seen,
                      "steps_per_s": steps / elapsed})
        state = {"version": STATE_VERSION, "config": _config_dict(cfg), "dataset": splits.name,
                 "num_classes": splits.num_classes, "input_shape": list(splits.input_shape),
                 "model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                 "epoch": epoch + 1, "curve": curve}
        if on_epoch is not None:
            on_epoch(curve[-1], state)
    if state is None:  # nothing to train: the epochs were done already
        raise RaynasError("the supernet has no epochs left to train")
    return state, curve


def _config_dict(cfg: SupernetConfig) -> dict[str, Any]:
    return {"space": cfg.space, "network": cfg.network_options(), "seed": cfg.seed,
            "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size, "lr": cfg.train.lr}


def _check_state(state: dict[str, Any], cfg: SupernetConfig, splits: Splits) -> None:
    if state.get("version") != STATE_VERSION:
        raise RaynasError(f"a supernet state of version {state.get('version')}; this raynas reads {STATE_VERSION}")
    mine = _config_dict(cfg)
    differ = [k for k in ("space", "network", "seed", "batch_size") if state["config"][k] != mine[k]]
    if differ or state.get("dataset") != splits.name:
        raise RaynasError(f"the supernet state was trained with other settings ({', '.join(differ) or 'dataset'}); "
                          "train a new one or pass the same settings")


def save_state_file(state: dict[str, Any], path: str | Path) -> None:
    """Write a supernet state (tensors and plain values only), atomically."""
    save_checkpoint(state, path)


def load_state_file(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state_file` (``weights_only``: nothing runs)."""
    try:
        state = load_checkpoint(path)
    except FileNotFoundError:
        raise RaynasError(f"{path}: no such supernet checkpoint; train one with train_supernet") from None
    except Exception as exc:  # noqa: BLE001 - a cut or foreign file
        raise RaynasError(f"{path} is not a readable supernet checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "model" not in state or state.get("version") != STATE_VERSION:
        raise RaynasError(f"{path} is not a raynas supernet checkpoint")
    return state


def supernet_trainable(config: dict[str, Any], data: Any, supernet: SupernetConfig) -> None:
    """Ray Tune function trainable that trains a supernet, with a checkpoint after every epoch.

    Use as ``tune.with_parameters(supernet_trainable, data=ray.put(splits), supernet=cfg)``; a
    restored trial continues from its last checkpoint with the weights an uninterrupted run
    would have. ``config["seed"]``, when present, overrides ``supernet.seed``.
    """
    import ray

    splits = ray.get(data) if isinstance(data, ray.ObjectRef) else data
    if "seed" in config:
        supernet = dataclasses.replace(supernet, seed=int(config["seed"]))
    state = restored_state(CHECKPOINT_FILE, load_state_file)

    def report(metrics: dict[str, float], state_now: dict[str, Any]) -> None:
        report_with_state(dict(metrics), state_now, CHECKPOINT_FILE, save_state_file)

    if state is not None and int(state["epoch"]) >= supernet.train.epochs:
        return
    train_supernet(splits, supernet, state=state, on_epoch=report)


class SupernetEvaluator:
    """Scores cells with a trained supernet's shared weights (an :class:`Evaluator`).

    Args:
        state: A trained supernet's state (from :func:`train_supernet`) or the path of its file.
        splits: The data it was trained on; BN statistics come from ``splits.train``, the score
            from ``splits.val`` (``splits.test`` is never used).
        bn_batches: Training batches to recompute batch-norm statistics on, per cell.
        batch_size: Batch size of the recalibration and of the evaluation.

    ``metrics`` are ``val_accuracy`` plus ``params`` and ``flops`` of the stand-alone network of
    the cell at the supernet's width (the space's cost model), so that searches can be limited
    by them. Evaluation is deterministic: the same cell gives the same accuracy every time.
    """

    partial = False
    cost_metrics = ("params", "flops")
    metrics = ("val_accuracy", "params", "flops")

    def __init__(self, state: dict[str, Any] | str | Path, splits: Splits, bn_batches: int = 4, batch_size: int = 128):
        check_positive("bn_batches", bn_batches)
        check_positive("batch_size", batch_size)
        self.state = load_state_file(state) if isinstance(state, (str, Path)) else state
        cfg = self.state["config"]
        self.space = get_space(cfg["space"])
        self.splits, self.bn_batches, self.batch_size = splits, int(bn_batches), int(batch_size)
        if splits.name != self.state.get("dataset") or splits.num_classes != self.state["num_classes"]:
            raise RaynasError(f"the supernet was trained on {self.state.get('dataset')!r}, not on {splits.name!r}")
        self._model: nn.Module | None = None
        self._costs: dict[str, dict[str, float]] = {}

    def __getstate__(self) -> dict[str, Any]:  # the built model stays behind; each worker builds its own once
        return {**self.__dict__, "_model": None}

    def _net(self) -> nn.Module:
        if self._model is None:
            cfg = self.state["config"]
            model = build_supernet(cfg["space"], self.state["num_classes"], self.state["input_shape"][0],
                                   **cfg["network"])
            model.load_state_dict(self.state["model"])
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = None  # cumulative average over the recalibration batches
            self._model = model
        return self._model

    def candidates(self) -> list[Arch] | None:
        return None

    @torch.no_grad()
    def accuracy(self, arch: Arch) -> float:
        """Validation accuracy (percent) of ``arch`` with the shared weights, after BN recalibration."""
        model, splits = self._net(), self.splits
        path = supernet_path(self.space.name, arch)
        x_train, _ = splits.train.tensors  # type: ignore[attr-defined]
        model.train()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        for b in range(min(self.bn_batches, math.ceil(len(x_train) / self.batch_size))):
            model(prepare_batch(x_train[b * self.batch_size:(b + 1) * self.batch_size], splits, train=False), path)
        model.eval()
        x_val, y_val = splits.val.tensors  # type: ignore[attr-defined]
        correct = 0
        for start in range(0, len(y_val), self.batch_size):
            x = prepare_batch(x_val[start:start + self.batch_size], splits, train=False)
            correct += int((model(x, path).argmax(1) == y_val[start:start + self.batch_size]).sum())
        return 100.0 * correct / len(y_val)

    def evaluate(self, arch: Arch, hparams: dict[str, Any] | None = None, fidelity: int | None = None,
                 seed: int | None = None) -> dict[str, Any]:
        self.space.validate(arch)
        return {"key": self.space.key(arch), "val_accuracy": self.accuracy(arch), **(self.cost(arch) or {})}

    def cost(self, arch: Arch) -> dict[str, float] | None:
        key = self.space.key(arch)
        if key not in self._costs:
            self._costs[key] = network_cost(self.space, arch, self.state["num_classes"], self.state["input_shape"][-1],
                                            **self.state["config"]["network"])
        return self._costs[key]

    def eval_time(self, arch: Arch, fidelity: int | None = None) -> float | None:
        return None

    def __repr__(self) -> str:
        cfg = self.state["config"]
        return (f"SupernetEvaluator({cfg['space']}, {cfg['network']}, "
                f"{self.state['epoch']} epochs on {self.state.get('dataset')})")


class SharedWeightsEvaluator:
    """ENAS's shared weights as an evaluator: each cell trains them a little, then is scored.

    ENAS alternates training the shared weights on cells its controller samples with training
    the controller on those cells' validation accuracy. Here the controller is a searcher
    (``enas``) and this evaluator holds the weights: evaluating a cell first trains its path of
    the supernet for ``train_steps`` minibatches (SGD with the recipe of ``config.train``, the
    minibatches in a seeded order that runs through the training set epoch after epoch), then
    returns its accuracy on the next validation minibatch of ``reward_batch`` images, with
    batch statistics, as ENAS's reward. So the weights learn from the cells the controller
    proposes, and the controller from the weights' verdict.

    It changes with every evaluation, so evaluations happen one at a time in the order given (a
    study on the simulated backend). Its state (weights, optimizer, data order and position,
    generator) goes into each of the study's checkpoints (:meth:`get_state` / :meth:`set_state`),
    so a resumed study continues with the weights it had, exactly as if never interrupted.

    Args:
        splits: The data.
        config: The supernet and its recipe (``train.epochs`` is not used).
        train_steps: Minibatches each evaluated cell trains the shared weights on.
        reward_batch: Validation images per reward.
    """

    partial = False
    cost_metrics = ("params", "flops")
    metrics = ("val_accuracy", "params", "flops")

    def __init__(self, splits: Splits, config: SupernetConfig | None = None, train_steps: int = 10,
                 reward_batch: int = 128):
        check_positive("train_steps", train_steps)
        check_positive("reward_batch", reward_batch)
        self.cfg = config or SupernetConfig()
        self.splits, self.train_steps, self.reward_batch = splits, int(train_steps), int(reward_batch)
        self.space = get_space(self.cfg.space)
        self.model = self.cfg.build(splits.num_classes, splits.input_shape[0])
        tc = self.cfg.train
        self.opt = torch.optim.SGD(self.model.parameters(), lr=tc.lr, momentum=tc.momentum,
                                   weight_decay=tc.weight_decay, nesterov=tc.nesterov and tc.momentum > 0)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self._order, self._at, self._val_at = torch.zeros(0, dtype=torch.long), 0, 0
        self.steps = 0
        self._costs: dict[str, dict[str, float]] = {}

    def candidates(self) -> list[Arch] | None:
        return None

    def _next_batch(self) -> torch.Tensor:
        n = len(self.splits.train)  # type: ignore[arg-type]
        bs = self.cfg.train.batch_size
        if self._at + bs > len(self._order):
            self._order, self._at = torch.randperm(n, generator=self.gen), 0
        idx = self._order[self._at:self._at + bs]
        self._at += bs
        return idx

    def evaluate(self, arch: Arch, hparams: dict[str, Any] | None = None, fidelity: int | None = None,
                 seed: int | None = None) -> dict[str, Any]:
        self.space.validate(arch)
        path = supernet_path(self.space.name, arch)
        x_all, y_all = self.splits.train.tensors  # type: ignore[attr-defined]
        loss_fn = nn.CrossEntropyLoss(label_smoothing=self.cfg.train.label_smoothing)
        self.model.train()
        for _ in range(self.train_steps):
            idx = self._next_batch()
            x = prepare_batch(x_all[idx], self.splits, train=True, generator=self.gen)
            loss = loss_fn(self.model(x, path), y_all[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.train.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.opt.step()
            self.steps += 1
        x_val, y_val = self.splits.val.tensors  # type: ignore[attr-defined]
        if self._val_at >= len(y_val):
            self._val_at = 0
        sl = slice(self._val_at, self._val_at + self.reward_batch)
        self._val_at += self.reward_batch
        with torch.no_grad():
            pred = self.model(prepare_batch(x_val[sl], self.splits, train=False), path).argmax(1)
        acc = 100.0 * float((pred == y_val[sl]).float().mean())
        return {"key": self.space.key(arch), "val_accuracy": acc, **self.cost(arch)}

    def get_state(self) -> dict[str, Any]:
        """Everything evaluation changes, as plain data (a study checkpoint holds it)."""
        return {
            "version": SHARED_STATE_VERSION,
            "config": _config_dict(self.cfg),
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.opt.state_dict()),
            "generator": self.gen.get_state(),
            "order": self._order.clone(),
            "at": self._at,
            "val_at": self._val_at,
            "steps": self.steps,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state`; a state of other settings is a clear error."""
        if state.get("version") != SHARED_STATE_VERSION or state.get("config") != _config_dict(self.cfg):
            raise RaynasError("the shared weights were saved with other settings (or another version); "
                              "resume with the evaluator settings the study ran with")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"])
        self._order = state["order"].clone()
        self._at, self._val_at, self.steps = int(state["at"]), int(state["val_at"]), int(state["steps"])

    def cost(self, arch: Arch) -> dict[str, float]:
        key = self.space.key(arch)
        if key not in self._costs:
            self._costs[key] = network_cost(self.space, arch, self.splits.num_classes, self.splits.input_shape[-1],
                                            **self.cfg.network_options())
        return self._costs[key]

    def eval_time(self, arch: Arch, fidelity: int | None = None) -> float | None:
        return None


def kendall_tau(supernet_acc: Sequence[float], standalone_acc: Sequence[float]) -> float:
    """Kendall's tau-b between the supernet's and the stand-alone accuracies of the same cells.

    1 means the supernet ranks the cells exactly as training them alone does; 0, no better than
    chance. It is the number that says how far to trust a search over the supernet.
    """
    from scipy.stats import kendalltau

    if len(supernet_acc) != len(standalone_acc) or len(supernet_acc) < 2:
        raise ValueError("kendall_tau needs two equally long sequences of at least two accuracies")
    return float(kendalltau(np.asarray(supernet_acc), np.asarray(standalone_acc)).statistic)
