"""Speed of the training path, each figure next to the same work done without raynas.

1. Training throughput (images/s) of ``train_model`` (the loop of the Tune trainable, CPU, its
   defaults: no AMP, no ``channels_last`` on CPU) on a mid-size cell of each image family, against
   a plain hand-written PyTorch loop on a copy of the same network (same seeded initialisation),
   the same in-memory images (digits upsampled to 3x32x32), the same batch size, optimiser
   (SGD, momentum 0.9, Nesterov, weight decay 5e-4) and cosine schedule: shuffle, forward,
   cross-entropy, backward, step, nothing else (the images are normalised once, up front).
   Part 1 runs torch on one thread by default (``--threads``), as in a trial of ``run_train``
   with its default one CPU (Ray sets ``OMP_NUM_THREADS`` to the trial's CPUs); two threads on a
   2-core machine shared with other work spend much of their time waiting on each other.
   Each measurement trains a fresh copy for one epoch over ``--images`` images and is timed from
   outside, the plain loop with its optimiser set-up, ``train_model`` as a whole call (set-up and
   its validation and test passes, here on two images each) less the time spent in its
   ``evaluate`` (summed by a wrapper): training throughput, the figure the target is about. The
   whole-call figure (evaluation included) and ``train_model``'s own ``images_per_s`` are
   recorded next to it. A warm-up pair first, then ``--reps`` pairs, alternating which of the two
   goes first; the ratio is the median of the per-pair ratios trainable/plain (target >= 0.9;
   the ratio of the medians is recorded too). The default, 256 images at batch 256, is one step
   per epoch: the case where the trainable's per-epoch costs weigh most.
   Both runs see the same batches in the same order, so their mean training losses must agree
   (checked: ``loss_diff``).
2. Tune overhead on the training path, with a tiny NAS-Bench-201 network (``build_model`` of
   ``raynas run --trainable train``), one CPU per trial as ``run_train`` reserves by default (the
   trial's torch uses one thread; the direct runs are timed with one thread too):
   a. per epoch report (checkpoint written, ``tune.report``, result to the driver, next step
      asked for): one trial of ``train_trainable`` for E_large epochs in a ``tune.Tuner`` against
      the same ``seeded_init`` + ``train_model`` call made directly. Overhead per epoch = the
      median interval between two results as the driver receives them (a Tune callback; the
      trainable waits for the driver between reports, so the interval is the full period of an
      epoch) minus the median interval between two epochs of the direct run (its ``on_epoch``);
      the first epoch is left out of both. Cross-check, start-up cancelled by a difference:
      ((Tune(E_large) - Tune(E_small)) - (direct(E_large) - direct(E_small))) / (E_large - E_small),
      which the noise of a trial's start-up (seconds, on a shared machine) can swamp.
   b. per trial: N one-epoch trials run one at a time (``max_concurrent_trials=1``, no actor
      reuse, auto callback loggers off, as ``run_train`` with one worker) against N direct calls:
      overhead per trial = (Tune(N) - direct(N)) / N, start and end of the Tuner included; the
      marginal cost of a trial is the same difference between N trials and one, over N - 1.
Ray is started once (2 CPUs). Writes benchmarks/results/training.json.
Usage: python benchmarks/bench_training.py [--quick] [--reps R] [--images N] [--batch-size B]
       [--threads T] [--families nasbench201,...] [--skip-tune] [--no-write]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import torch  # noqa: E402
from _common import write  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from raynas.runner._train_run import build_model  # noqa: E402
from raynas.spaces import get_space  # noqa: E402
from raynas.spaces._darts import DARTS_V2  # noqa: E402
from raynas.trainables import train as train_module  # noqa: E402
from raynas.trainables.data import Splits, load_dataset  # noqa: E402
from raynas.trainables.networks import count_params  # noqa: E402
from raynas.trainables.train import TrainConfig, seeded_init, train_model, train_trainable  # noqa: E402

TARGET = 0.9
NB201_CELL = ("nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "nor_conv_3x3", "nor_conv_1x1")
# A 7-vertex NAS-Bench-101 cell, 9 edges: two 3x3 convs, two 1x1 convs and a max pool.
NB101_SPEC = (
    [[0, 1, 1, 0, 0, 1, 1],
     [0, 0, 0, 1, 0, 0, 0],
     [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 1, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 0]],
    ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
)  # fmt: skip
# Network options: narrower or shallower than the papers' networks (shapes unchanged) so that one
# 256-image step takes 2 to 3 s on one thread; the cells are the papers'.
FAMILIES = {
    "nasbench201": ({"channels": 16, "cells_per_stage": 2}, "NB201 cell conv3x3/conv1x1/skip/avgpool/conv3x3/conv1x1"),
    "nasbench_macro": ({"init_channels": 16}, "NAS-Bench-Macro 02012100 (identity, MB3_K3, MB6_K5 mix)"),
    "nasbench101": ({"stem_channels": 16}, "NB101 7 vertices, 9 edges: 2x conv3x3, 2x conv1x1, maxpool"),
    "darts": ({"channels": 8, "layers": 5}, "DARTS_V2 genotype"),
}
TINY = {"channels": 4, "cells_per_stage": 1}  # the Tune overhead part


def family_arch(name: str):
    space = get_space(name)
    if name == "nasbench201":
        return NB201_CELL
    if name == "nasbench_macro":
        return space.from_string("02012100")
    if name == "nasbench101":
        return space.from_spec(*NB101_SPEC)
    return DARTS_V2


def model_fn_for(name: str, options: dict):
    """A ``model_fn`` as ``run_train`` builds it: Tune config -> architecture -> network."""
    return partial(build_model, space=name, num_classes=10, network=dict(options))


def subset_splits(full: Splits, n_train: int, n_eval: int) -> Splits:
    """The first ``n_train`` training images; the first ``n_eval`` of val and test."""
    def head(ds, n):
        x, y = ds.tensors
        return TensorDataset(x[:n].contiguous(), y[:n].contiguous())

    return Splits(train=head(full.train, n_train), val=head(full.val, n_eval), test=head(full.test, n_eval),
                  num_classes=full.num_classes, input_shape=full.input_shape, mean=full.mean, std=full.std,
                  augment=False, name=full.name)


def plain_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, seed: int) -> float:
    """Hand-written loop: the trainable's optimiser, schedule, loss and data order, nothing else.

    ``x`` is already normalised. Returns the mean training loss of the last epoch.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs, cfg.lr_min)
    criterion = nn.CrossEntropyLoss()
    model.train()
    n = len(y)
    losses: list[torch.Tensor] = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        losses = []
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            xb, yb = x[idx], y[idx]
            loss = criterion(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach() * len(yb))
        scheduler.step()
    return float(torch.stack(losses).sum()) / n


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def timed_evaluate() -> Iterator[list[float]]:
    """Sum the seconds ``train_model`` spends in ``evaluate`` (its validation and test passes)."""
    original = train_module.evaluate
    spent = [0.0]

    def evaluate(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    train_module.evaluate = evaluate
    try:
        yield spent
    finally:
        train_module.evaluate = original


def bench_family(name: str, splits: Splits, cfg: TrainConfig, reps: int, seed: int = 0) -> dict:
    options, description = FAMILIES[name]
    space = get_space(name)
    config = space.to_config(family_arch(name))
    model_fn = model_fn_for(name, options)
    initial = seeded_init(lambda: model_fn(config), seed)
    x, y = splits.train.tensors
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)
    x_norm = ((x.float() - mean) / std).contiguous()
    n = len(y)

    def run_trainable() -> tuple[float, float, float, float]:
        model = copy.deepcopy(initial)
        with timed_evaluate() as eval_s:
            t0 = time.perf_counter()
            curve = train_model(model, splits, cfg, seed).curve
            wall = time.perf_counter() - t0
        return n / (wall - eval_s[0]), n / wall, curve[-1]["images_per_s"], curve[-1]["train_loss"]

    def run_plain() -> tuple[float, float]:
        model = copy.deepcopy(initial)
        t0 = time.perf_counter()
        loss = plain_loop(model, x_norm, y, cfg, seed)
        return n / (time.perf_counter() - t0), loss

    run_trainable()  # warm-up pair: allocator, oneDNN primitives, lazy imports
    run_plain()
    trainable, whole, self_reported, plain, ratios, ratios_whole, loss_diff = [], [], [], [], [], [], 0.0
    for rep in range(reps):
        if rep % 2 == 0:
            a, w, s, la = run_trainable()
            b, lb = run_plain()
        else:
            b, lb = run_plain()
            a, w, s, la = run_trainable()
        trainable.append(a)
        whole.append(w)
        self_reported.append(s)
        plain.append(b)
        ratios.append(a / b)
        ratios_whole.append(w / b)
        loss_diff = max(loss_diff, abs(la - lb))
    return {
        "cell": description, "options": options, "params": count_params(initial),
        "trainable_images_per_s": round(median(trainable), 1),
        "trainable_whole_call_images_per_s": round(median(whole), 1),
        "trainable_self_reported_images_per_s": round(median(self_reported), 1),
        "plain_images_per_s": round(median(plain), 1),
        "ratio": round(median(ratios), 3),
        "ratio_of_medians": round(median(trainable) / median(plain), 3),
        "ratio_whole_call": round(median(ratios_whole), 3),
        "ratio_self_reported": round(median(self_reported) / median(plain), 3),
        "loss_diff": loss_diff,
        "runs": {"trainable": [round(v, 1) for v in trainable], "whole_call": [round(v, 1) for v in whole],
                 "plain": [round(v, 1) for v in plain], "ratios": [round(v, 3) for v in ratios]},
    }


# --- Tune overhead -------------------------------------------------------------------------------
def tune_fit(splits: Splits, cfg: TrainConfig, n_trials: int, storage: str, stamps: list[float] | None = None,
             reuse_actors: bool = False) -> float:
    """Wall seconds of a ``tune.Tuner`` of ``train_trainable``: ``n_trials`` trials of the tiny network."""
    from ray import tune

    space = get_space("nasbench201")
    base = space.to_config(NB201_CELL)
    callbacks = []
    if stamps is not None:
        class Stamp(tune.Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                stamps.append(time.perf_counter())

        callbacks.append(Stamp())
    t0 = time.perf_counter()
    trainable = tune.with_parameters(train_trainable, model_fn=model_fn_for("nasbench201", TINY),
                                     data_ref_or_splits=splits, train_config=cfg, seed=0)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1, "gpu": 0}),
        param_space={**base, "seed": tune.grid_search(list(range(n_trials)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=reuse_actors),
        run_config=tune.RunConfig(storage_path=storage, verbose=0, callbacks=callbacks,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    errors = [r.error for r in grid if r.error is not None]
    if errors:
        raise RuntimeError(f"a benchmark trial failed: {errors[0]}")
    return wall


def direct_fit(splits: Splits, cfg: TrainConfig, n_trials: int, stamps: list[float] | None = None) -> float:
    """Wall seconds of the same trials as direct ``seeded_init`` + ``train_model`` calls, one thread."""
    space = get_space("nasbench201")
    model_fn = model_fn_for("nasbench201", TINY)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        for seed in range(n_trials):
            config = {**space.to_config(NB201_CELL), "seed": seed}
            model = seeded_init(lambda config=config: model_fn(config), seed)
            on_epoch = None if stamps is None else (lambda m, s: stamps.append(time.perf_counter()))
            train_model(model, splits, cfg, seed, on_epoch=on_epoch)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def steady_interval(stamps: list[float]) -> float:
    """Median interval between consecutive epochs, the first one (start-up) left out."""
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])]
    return median(gaps) if gaps else float("nan")


def bench_tune(splits: Splits, batch_size: int, e_small: int, e_large: int, n_trials: int, reps: int,
               trial_reps: int) -> dict:
    import ray

    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    tmp = tempfile.mkdtemp()
    try:
        cfg_s = TrainConfig(epochs=e_small, batch_size=batch_size)
        cfg_l = TrainConfig(epochs=e_large, batch_size=batch_size)
        cfg_1 = TrainConfig(epochs=1, batch_size=batch_size)
        tune_fit(splits, cfg_1, 1, os.path.join(tmp, "warm"))  # workers started, modules imported
        direct_fit(splits, cfg_1, 1)
        t_s, t_l, d_s, d_l, per_epoch, tune_gap, direct_gap = [], [], [], [], [], [], []
        for rep in range(reps):
            stamps_t: list[float] = []
            stamps_d: list[float] = []
            t_s.append(tune_fit(splits, cfg_s, 1, os.path.join(tmp, f"es{rep}")))
            d_s.append(direct_fit(splits, cfg_s, 1))
            d_l.append(direct_fit(splits, cfg_l, 1, stamps_d))
            t_l.append(tune_fit(splits, cfg_l, 1, os.path.join(tmp, f"el{rep}"), stamps_t))
            per_epoch.append(((t_l[-1] - t_s[-1]) - (d_l[-1] - d_s[-1])) / (e_large - e_small))
            tune_gap.append(steady_interval(stamps_t))
            direct_gap.append(steady_interval(stamps_d))
        n1_t, n1_d, nn_t, nn_d, per_trial, marginal = [], [], [], [], [], []
        nn_r, per_trial_reuse = [], []
        for rep in range(trial_reps):
            nn_d.append(direct_fit(splits, cfg_1, n_trials))
            nn_t.append(tune_fit(splits, cfg_1, n_trials, os.path.join(tmp, f"n{rep}")))
            # What `raynas run --trainable train` does: one worker process reused by every trial.
            nn_r.append(tune_fit(splits, cfg_1, n_trials, os.path.join(tmp, f"r{rep}"), reuse_actors=True))
            per_trial_reuse.append((nn_r[-1] - nn_d[-1]) / n_trials)
            n1_t.append(tune_fit(splits, cfg_1, 1, os.path.join(tmp, f"one{rep}")))
            n1_d.append(direct_fit(splits, cfg_1, 1))
            per_trial.append((nn_t[-1] - nn_d[-1]) / n_trials)
            marginal.append(((nn_t[-1] - n1_t[-1]) - (nn_d[-1] - n1_d[-1])) / (n_trials - 1))
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    r = lambda v: round(v, 4)  # noqa: E731
    return {
        "network": {"space": "nasbench201", "cell": list(NB201_CELL), "options": TINY,
                    "train_images": len(splits.train), "val_images": len(splits.val),
                    "test_images": len(splits.test), "batch_size": batch_size, "cpus_per_trial": 1},
        "per_epoch": {
            "overhead_s": r(median(tune_gap) - median(direct_gap)),
            "method": "median driver-side interval between results minus median interval between direct epochs",
            "overhead_by_epoch_count_s": r(median(per_epoch)),
            "epochs_small": e_small, "epochs_large": e_large,
            "tune_small_s": r(median(t_s)), "tune_large_s": r(median(t_l)),
            "direct_small_s": r(median(d_s)), "direct_large_s": r(median(d_l)),
            "direct_epoch_s": r(median(direct_gap)),
            "tune_epoch_interval_s": r(median(tune_gap)),
            "runs": [r(v) for v in per_epoch],
        },
        "per_trial": {
            "trials": n_trials,
            "overhead_s": r(median(per_trial)),
            "marginal_overhead_s": r(median(marginal)),
            "tune_s": r(median(nn_t)), "direct_s": r(median(nn_d)),
            "tune_one_trial_s": r(median(n1_t)), "direct_one_trial_s": r(median(n1_d)),
            "direct_per_trial_s": r(median(nn_d) / n_trials),
            "runs": [r(v) for v in per_trial], "marginal_runs": [r(v) for v in marginal],
            "reuse_actors_overhead_s": r(median(per_trial_reuse)),
            "reuse_actors_tune_s": r(median(nn_r)),
            "reuse_actors_runs": [r(v) for v in per_trial_reuse],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller everything (a smoke run, under a minute)")
    parser.add_argument("--reps", type=int, default=None, help="measured pairs per family (default 5; quick 1)")
    parser.add_argument("--images", type=int, default=None, help="training images per measurement (256: one step; quick 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (256, the trainable's default; quick 32)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of part 1 (1, what a trial with run_train's one CPU gets; 0: torch's default)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave training.json as it is")
    args = parser.parse_args()
    quick = args.quick
    reps = args.reps or (1 if quick else 5)
    images = args.images or (64 if quick else 256)
    batch = args.batch_size or (32 if quick else 256)
    families = [f for f in args.families.split(",") if f]
    for f in families:
        if f not in FAMILIES:
            parser.error(f"unknown family {f!r}; choose from {', '.join(FAMILIES)}")
    t_start = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    full = load_dataset("digits", seed=0, image_size=32, channels=3)
    splits = subset_splits(full, images, 2)
    cfg = TrainConfig(epochs=1, batch_size=batch)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {images} images of 3x32x32 per "
          f"measurement, batch {batch}, 1 epoch; warm-up pair, then {reps} pairs; medians")
    out: dict = {
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "target_ratio": TARGET,
        "load_average_at_start": list(os.getloadavg()),
        "settings": {"quick": quick, "reps": reps, "images": images, "batch_size": batch, "epochs": 1,
                     "dataset": "digits 3x32x32 (first images of the train split)", "device": "cpu",
                     "amp": False, "channels_last": False},
        "training": {},
    }
    print(f"{'family':16}{'params':>9}{'trainable img/s':>17}{'plain img/s':>13}{'ratio':>8}{'of medians':>12}"
          f"{'whole call':>12}{'ratio':>7}{'loss diff':>11}")
    for name in families:
        res = bench_family(name, splits, cfg, reps)
        out["training"][name] = res
        flag = "" if res["ratio"] >= TARGET else f"  below {TARGET}"
        print(f"{name:16}{res['params']:>9,}{res['trainable_images_per_s']:>17.1f}{res['plain_images_per_s']:>13.1f}"
              f"{res['ratio']:>8.3f}{res['ratio_of_medians']:>12.3f}{res['trainable_whole_call_images_per_s']:>12.1f}"
              f"{res['ratio_whole_call']:>7.3f}{res['loss_diff']:>11.1e}{flag}")
    out["all_families_meet_target"] = all(r["ratio"] >= TARGET for r in out["training"].values())

    if not args.skip_tune:
        import ray

        tiny = subset_splits(full, 64 if quick else 256, 64)
        e_small, e_large = (1, 3) if quick else (2, 20)
        n_trials = 2 if quick else 5
        res = bench_tune(tiny, 64 if quick else 256, e_small, e_large, n_trials, 1 if quick else 2, 1)
        res["ray"] = ray.__version__
        out["tune"] = res
        pe, pt = res["per_epoch"], res["per_trial"]
        print(f"Tune per epoch report: {pe['overhead_s'] * 1000:.0f} ms per epoch ({pe['tune_epoch_interval_s'] * 1000:.0f} "
              f"ms between results under Tune vs {pe['direct_epoch_s'] * 1000:.0f} ms per epoch direct); by epoch "
              f"count: {pe['overhead_by_epoch_count_s'] * 1000:.0f} ms (Tune {pe['epochs_small']} vs "
              f"{pe['epochs_large']} epochs: {pe['tune_small_s']:.2f} s, {pe['tune_large_s']:.2f} s; direct "
              f"{pe['direct_small_s']:.2f} s, {pe['direct_large_s']:.2f} s)")
        print(f"Tune per trial: {pt['overhead_s']:.2f} s per trial ({pt['trials']} one-epoch trials, one at a "
              f"time: Tune {pt['tune_s']:.2f} s vs direct {pt['direct_s']:.2f} s); marginal "
              f"{pt['marginal_overhead_s']:.2f} s per added trial")
        print(f"Tune per trial with actor reuse (what raynas run --trainable train does): "
              f"{pt['reuse_actors_overhead_s']:.2f} s per trial")
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    print(f"total {out['total_s']} s")
    if not args.no_write:
        write("training", out)


if __name__ == "__main__":
    main()
