"""Training a network on :class:`~raynas.trainables.data.Splits`, and the Ray Tune trainable doing it.

SGD with momentum, weight decay and a cosine schedule (the NAS-Bench-201 recipe), optional label
smoothing and gradient clipping, AMP and ``channels_last`` on CUDA. On CPU a run is a function of
its seed: epoch ``e`` reads the data in the order of ``torch.Generator().manual_seed(seed + e)``,
the model is built by :func:`seeded_init`, and the global torch RNG is left as it was found.

Example:
    >>> from torch import nn
    >>> from raynas.trainables.data import load_dataset
    >>> splits = load_dataset("digits")
    >>> model = seeded_init(lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), seed=0)
    >>> curve = train_model(model, splits, TrainConfig(epochs=2, batch_size=128), seed=0).curve
    >>> curve[-1]["val_accuracy"] > 80
    True
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from raynas._errors import RaynasError, check_positive
from raynas.trainables.data import Splits, prepare_batch

T = TypeVar("T")
Metrics = dict[str, float]
TIMING_KEYS = ("epoch_time", "images_per_s")  # differ from run to run; every other metric is seeded
CHECKPOINT_FILE = "train_state.pt"
STATE_VERSION = 1


class TrainingDivergedError(RaynasError, FloatingPointError):
    """The training loss became NaN or infinite; the trial should be recorded as failed."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train a network. Defaults: the NAS-Bench-201 recipe (Dong & Yang, ICLR 2020).

    Attributes:
        epochs: Number of epochs; the cosine schedule spans them.
        batch_size: Training batch size.
        lr: Initial learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay on every parameter.
        nesterov: Nesterov momentum.
        label_smoothing: Label smoothing of the cross-entropy loss.
        lr_min: Learning rate at the end of the cosine schedule.
        grad_clip: Clip the gradient norm to this value (DARTS: 5.0); None: no clipping.
        num_workers: ``DataLoader`` workers for datasets that are not held in memory.
        amp: Mixed precision (float16 with a gradient scaler on CUDA); "auto": on for CUDA.
        channels_last: ``channels_last`` memory format; "auto": on for CUDA.
        device: "auto" (CUDA when available, else CPU) or a torch device string.
        eval_batch_size: Batch size of evaluation; None: twice ``batch_size``.
        test_every_epoch: Report ``test_accuracy`` every epoch, not only after the last.
    """

    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    label_smoothing: float = 0.0
    lr_min: float = 0.0
    grad_clip: float | None = None
    num_workers: int = 0
    amp: bool | Literal["auto"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    device: str = "auto"
    eval_batch_size: int | None = None
    test_every_epoch: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lr"):
            check_positive(name, getattr(self, name))
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        for name in ("weight_decay", "lr_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        curve: One metrics dict per epoch trained so far (restored epochs included).
        test_accuracy: Test accuracy (percent) after the last epoch; never for model selection.
    """

    curve: list[Metrics] = field(default_factory=list)
    test_accuracy: float | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """``torch.device`` for ``name``; "auto" is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def private_rng(seed: int) -> Iterator[None]:
    """Run a block with the global torch RNG seeded by ``seed``, restoring it afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        for d in devices:
            torch.cuda.default_generators[d].manual_seed(seed)
        yield


def seeded_init(model_fn: Callable[[], T], seed: int) -> T:
    """Call ``model_fn()`` (build the model on CPU) with its initialisation drawn from ``seed``.

    The global torch RNG is the same afterwards as before.
    """
    with private_rng(seed):
        return model_fn()


def _epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the global RNG inside epoch ``epoch`` (dropout and the like), distinct from data order."""
    return int(np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(1)[0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Batches:
    """Batches of a dataset on ``device``; in-memory tensors are moved there once and sliced."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, num_workers: int):
        self.dataset, self.batch_size, self.device = dataset, batch_size, device
        self.num_workers = num_workers
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        if isinstance(dataset, TensorDataset):
            x, y = dataset.tensors
            if device.type == "cuda":
                x, y = x.pin_memory().to(device, non_blocking=True), y.to(device, non_blocking=True)
            self.tensors = (x, y)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __call__(self, generator: torch.Generator | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches, shuffled by ``generator`` when one is given."""
        if self.tensors is not None:
            x, y = self.tensors
            n = len(y)
            order = torch.randperm(n, generator=generator) if generator is not None else None
            if order is not None:
                order = order.to(self.device)
            for start in range(0, n, self.batch_size):
                if order is None:
                    yield x[start : start + self.batch_size], y[start : start + self.batch_size]
                else:
                    idx = order[start : start + self.batch_size]
                    yield x[idx], y[idx]
            return
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=generator is not None,
            generator=generator,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for xb, yb in loader:
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: _Batches, splits: Splits, amp: bool, channels_last: bool
) -> float:
    """Top-1 accuracy in percent of ``model`` on every batch of ``batches``."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=batches.device)
    for x, y in batches(None):
        x = prepare_batch(x, splits, train=False)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(batches.device, amp):
            correct += (model(x).argmax(dim=1) == y).sum()
    return 100.0 * correct.item() / max(1, len(batches))


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=amp)


def train_model(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig | None = None,
    seed: int = 0,
    start_epoch: int = 0,
    state: dict[str, Any] | None = None,
    on_epoch: Callable[[Metrics, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``splits.train`` and measure it on ``splits.val`` after every epoch.

    Args:
        model: The network, freshly built (see :func:`seeded_init`); moved to the device.
        splits: The data.
        config: How to train; None: ``TrainConfig()``.
        seed: Seeds the data order and augmentation (epoch ``e`` uses ``seed + e``).
        start_epoch: Epochs already done: with ``state`` it must match ``state["epoch"]``;
            without, the schedule and data order are fast-forwarded over them.
        state: A state from ``on_epoch`` or :func:`load_checkpoint` to resume from.
        on_epoch: Called after each epoch with the metrics and the state to checkpoint (live
            tensors: save or copy them before training goes on).

    Returns:
        The curve (one metrics dict per epoch: ``epoch``, ``lr``, ``train_loss``,
        ``train_accuracy``, ``val_accuracy``, ``epoch_time``, ``images_per_s``, and
        ``test_accuracy`` after the last epoch) and the final test accuracy.

    Raises:
        TrainingDivergedError: The loss became NaN or infinite.
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    amp = device.type == "cuda" if config.amp == "auto" else bool(config.amp)
    channels_last = device.type == "cuda" if config.channels_last == "auto" else bool(config.channels_last)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay, nesterov=config.nesterov and config.momentum > 0,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, config.lr_min)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    curve: list[Metrics] = []
    if state is not None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"training state version {state.get('version')!r}, expected {STATE_VERSION}")
        if start_epoch not in (0, state["epoch"]):
            raise ValueError(f"start_epoch={start_epoch} but the state is after epoch {state['epoch']}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        curve, start_epoch = [dict(m) for m in state["curve"]], int(state["epoch"])
    else:
        with warnings.catch_warnings():  # stepping the schedule without training is the point here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(start_epoch):
                scheduler.step()

    eval_bs = config.eval_batch_size or 2 * config.batch_size
    train = _Batches(splits.train, config.batch_size, device, config.num_workers)
    val = _Batches(splits.val, eval_bs, device, config.num_workers)
    test = _Batches(splits.test, eval_bs, device, config.num_workers)
    check_every = 1 if device.type == "cpu" else 25  # a NaN check syncs an accelerator
    result = TrainResult(curve=curve)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        generator = torch.Generator().manual_seed(seed + epoch)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        with private_rng(_epoch_seed(seed, epoch)):
            for step, (xb, yb) in enumerate(train(generator)):
                x = prepare_batch(xb, splits, train=True, generator=generator)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp):
                    logits = model(x)
                    loss = criterion(logits.float(), yb)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach().float() * len(yb)
                correct += (logits.detach().argmax(dim=1) == yb).sum()
                if step % check_every == 0:
                    _check_finite(loss.item(), epoch, step, lr)
        _check_finite(loss_sum.item(), epoch, -1, lr)
        _sync(device)
        train_time = time.perf_counter() - t0
        scheduler.step()
        metrics: Metrics = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum.item() / len(train),
            "train_accuracy": 100.0 * correct.item() / len(train),
            "val_accuracy": evaluate(model, val, splits, amp, channels_last),
        }
        if config.test_every_epoch or epoch + 1 == config.epochs:
            metrics["test_accuracy"] = evaluate(model, test, splits, amp, channels_last)
        metrics["epoch_time"] = time.perf_counter() - t0
        metrics["images_per_s"] = len(train) / train_time
        curve.append(metrics)
        if on_epoch is not None:
            state_now = {
                "version": STATE_VERSION,
                "epoch": epoch + 1,
                "seed": seed,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "curve": [dict(m) for m in curve],
            }
            on_epoch(dict(metrics), state_now)
    if curve and "test_accuracy" in curve[-1]:
        result.test_accuracy = curve[-1]["test_accuracy"]
    return result


def _check_finite(loss: float, epoch: int, step: int, lr: float) -> None:
    if not math.isfinite(loss):
        where = f"step {step} of epoch {epoch + 1}" if step >= 0 else f"epoch {epoch + 1}"
        raise TrainingDivergedError(
            f"training diverged: loss is {loss} at {where} (lr {lr:g}); lower the learning rate "
            "or set grad_clip"
        )


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write a training state with ``torch.save``, atomically (temporary file, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training state written by :func:`save_checkpoint` (tensors and plain values only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def restored_state(filename: str, load: Callable[[Path], dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The state in file ``filename`` of the running Tune trial's latest checkpoint; None on a first start.

    ``load`` reads the file (default: :func:`load_checkpoint`).
    """
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return (load or load_checkpoint)(Path(directory) / filename)


def report_with_state(metrics: dict[str, Any], state: dict[str, Any], filename: str,
                      save: Callable[[dict[str, Any], Path], None] | None = None) -> None:
    """``tune.report(metrics)`` with ``state`` written to ``filename`` (by ``save``, default
    :func:`save_checkpoint`) as the trial's checkpoint."""
    from ray import tune

    with tempfile.TemporaryDirectory() as directory:
        (save or save_checkpoint)(state, Path(directory) / filename)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


#: ``TrainConfig`` fields a hyperparameter search may set (``config["hparams"]`` of a trial).
TUNABLE = ("lr", "momentum", "weight_decay", "nesterov", "label_smoothing", "lr_min", "grad_clip", "batch_size")


def apply_hparams(config: TrainConfig, hparams: dict[str, Any] | None) -> TrainConfig:
    """``config`` with the tunable fields in ``hparams`` replaced (checked by name and range).

    Raises:
        ValueError: a name that is not in :data:`TUNABLE`, or a value out of range.
    """
    if not hparams:
        return config
    unknown = sorted(set(hparams) - set(TUNABLE))
    if unknown:
        raise ValueError(f"cannot tune {', '.join(unknown)}; tunable training settings: {', '.join(TUNABLE)}")
    values = dict(hparams)
    if "batch_size" in values:
        if float(values["batch_size"]) != int(values["batch_size"]):
            raise ValueError(f"batch_size must be a whole number, got {values['batch_size']!r}")
        values["batch_size"] = int(values["batch_size"])
    if "nesterov" in values:
        values["nesterov"] = bool(values["nesterov"])
    for name in ("lr", "momentum", "weight_decay", "label_smoothing", "lr_min", "grad_clip"):
        if values.get(name) is not None:
            values[name] = float(values[name])
    return dataclasses.replace(config, **values)


def train_trainable(
    config: dict[str, Any],
    model_fn: Callable[[dict[str, Any]], nn.Module],
    data_ref_or_splits: Any,
    train_config: TrainConfig | None = None,
    seed: int = 0,
) -> None:
    """Ray Tune function trainable: build ``model_fn(config)``, train it, report every epoch.

    Use as ``tune.with_parameters(train_trainable, model_fn=..., data_ref_or_splits=splits,
    train_config=...)`` so the data travels once through the object store. After each epoch it
    calls ``tune.report(metrics, checkpoint=...)``; a restored trial continues from its last
    checkpoint with the curve an uninterrupted run would have. ``config["seed"]``, when present,
    overrides ``seed``; ``config["hparams"]`` (from a :class:`~raynas.searchers.JointSearcher` or a
    user's ``param_space``) overrides the :data:`TUNABLE` fields of ``train_config``. An exception (``model_fn`` failing, :class:`TrainingDivergedError`) errors
    the trial.
    """
    import ray

    splits = ray.get(data_ref_or_splits) if isinstance(data_ref_or_splits, ray.ObjectRef) else data_ref_or_splits
    seed = int(config.get("seed", seed))
    train_config = apply_hparams(train_config or TrainConfig(), config.get("hparams"))
    state = restored_state(CHECKPOINT_FILE)
    model = seeded_init(lambda: model_fn(config), seed)

    def report(metrics: Metrics, state_now: dict[str, Any]) -> None:
        report_with_state(metrics, state_now, CHECKPOINT_FILE)

    train_model(model, splits, train_config, seed, state=state, on_epoch=report)
