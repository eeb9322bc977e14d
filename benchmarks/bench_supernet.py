"""Supernet evaluation (SPOS) on NAS-Bench-201 and digits: speed, and how far its ranking holds.

Each figure next to its peer measured in the same run:

1. Supernet training, steps/s, against the training of one stand-alone network of the same
   width (a mid-size cell) with ``train_model`` on the same batches: the ratio is what
   weight sharing costs per step (a path of the supernet is one network, plus sampling).
2. Evaluations/s of :class:`SupernetEvaluator` (BN recalibration on ``--bn-batches`` training
   batches, then the validation set) against training one cell stand-alone for the same epochs:
   the speed-up that makes weight sharing worth it.
3. Kendall tau between supernet accuracy and stand-alone accuracy (``train_model``, same
   epochs and recipe) on ``--cells`` random cells; the number that says how far to trust a
   search over the supernet.
4. The wall time of an SNAS search (``--snas-epochs``, the same network and batch size, every
   op of every edge computed at each step) against the SPOS supernet's training time per epoch.
5. The wall time of an SNAS search over the DARTS space (``--darts-epochs`` epochs of DARTS's
   search network, ``--darts-channels`` x ``--darts-layers``: 14 edges of 8 ops per cell) against
   the NAS-Bench-201 one, per epoch (the ratio).

Everything on one torch thread (a one-CPU Ray trial). Writes benchmarks/results/supernet.json.
Usage: python benchmarks/bench_supernet.py [--channels 16] [--cells-per-stage 5] [--epochs 10]
       [--cells 20] [--darts-channels 16] [--darts-layers 8] [--darts-epochs 1] [--snas-only]
       [--quick] [--no-write]
``--snas-only`` measures 4 and 5 alone (the SNAS searches, no SPOS training).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from benchmarks._common import write
from raynas.spaces import get_space
from raynas.trainables.data import load_dataset
from raynas.trainables.networks import build_network
from raynas.trainables.snas import genotype_json
from raynas.trainables.supernet import (
    SupernetConfig,
    SupernetEvaluator,
    kendall_tau,
    train_supernet,
)
from raynas.trainables.train import TrainConfig, seeded_init, train_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--cells-per-stage", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--bn-batches", type=int, default=4)
    ap.add_argument("--snas-epochs", type=int, default=3)
    ap.add_argument("--darts-channels", type=int, default=16, help="DARTS's search network: 16")
    ap.add_argument("--darts-layers", type=int, default=8, help="DARTS's search network: 8 cells")
    ap.add_argument("--darts-epochs", type=int, default=1)
    ap.add_argument("--snas-only", action="store_true", help="only the SNAS searches (figures 4 and 5)")
    ap.add_argument("--quick", action="store_true", help="C=8, N=1, 3 epochs, 8 cells; DARTS C=4, 3 cells")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.channels, args.cells_per_stage, args.epochs, args.cells = 8, 1, 3, 8
        args.darts_channels, args.darts_layers = 4, 3
    torch.set_num_threads(1)
    splits = load_dataset("digits", seed=0, channels=3)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the first optimizer imports torch._dynamo (s)
    if args.snas_only:
        out = {"settings": {k: v for k, v in vars(args).items() if k != "no_write"}, **snas_times(splits, args)}
        if not args.no_write:
            write("supernet_snas", out)
        return
    recipe = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device="cpu")
    cfg = SupernetConfig(channels=args.channels, cells_per_stage=args.cells_per_stage, train=recipe)
    net_opts = {"channels": args.channels, "cells_per_stage": args.cells_per_stage}

    t = time.perf_counter()
    state, curve = train_supernet(splits, cfg)
    supernet_s = time.perf_counter() - t
    steps = args.epochs * -(-len(splits.train) // args.batch_size)
    print(f"supernet: {args.epochs} epochs in {supernet_s:.1f} s, {steps / supernet_s:.1f} steps/s, "
          f"final train loss {curve[-1]['train_loss']:.3f}")

    space = get_space("nasbench201")
    rng = np.random.default_rng(0)
    cells = []
    while len(cells) < args.cells:  # distinct cells (up to isomorphism)
        arch = space.sample(rng)
        if space.key(arch) not in {space.key(c) for c in cells}:
            cells.append(arch)
    ev = SupernetEvaluator(state, splits, bn_batches=args.bn_batches)
    ev.evaluate(cells[0])  # warm-up (first forward pass allocations)
    times, sup_acc = [], []
    for arch in cells:
        t = time.perf_counter()
        sup_acc.append(ev.accuracy(arch))
        times.append(time.perf_counter() - t)
    eval_s = statistics.median(times)

    alone_acc, alone_s = [], []
    for i, arch in enumerate(cells):
        model = seeded_init(lambda a=arch: build_network(space, a, splits.num_classes, **net_opts), i)
        t = time.perf_counter()
        result = train_model(model, splits, recipe, seed=i)
        alone_s.append(time.perf_counter() - t)
        alone_acc.append(result.curve[-1]["val_accuracy"])
    per_step_alone = statistics.median(alone_s) / steps
    tau = kendall_tau(sup_acc, alone_acc)

    snas = snas_times(splits, args)
    out = {
        "settings": {k: v for k, v in vars(args).items() if k != "no_write"},
        "supernet_train_s": supernet_s, "supernet_steps_per_s": steps / supernet_s,
        "standalone_steps_per_s": 1.0 / per_step_alone,
        "supernet_vs_standalone_step_ratio": (steps / supernet_s) * per_step_alone,
        "eval_s_per_cell": eval_s, "evals_per_s": 1.0 / eval_s,
        "standalone_train_s_per_cell": statistics.median(alone_s),
        "speedup_eval_vs_training": statistics.median(alone_s) / eval_s,
        "kendall_tau": tau,
        **snas,
        "snas_vs_spos_epoch_ratio": snas["snas_epoch_s"] / (supernet_s / args.epochs),
        "supernet_acc": sup_acc, "standalone_acc": alone_acc,
    }
    print(f"steps/s: supernet {out['supernet_steps_per_s']:.1f} vs stand-alone {out['standalone_steps_per_s']:.1f} "
          f"(ratio {out['supernet_vs_standalone_step_ratio']:.2f})")
    print(f"evaluation: {eval_s * 1000:.0f} ms per cell ({1 / eval_s:.1f}/s) vs {statistics.median(alone_s):.1f} s "
          f"to train one ({out['speedup_eval_vs_training']:.0f}x)")
    print(f"Kendall tau (supernet vs stand-alone, {len(cells)} cells, {args.epochs} epochs each): {tau:.3f}")
    print(f"SNAS: {out['snas_epoch_s']:.1f} s/epoch, {out['snas_vs_spos_epoch_ratio']:.1f}x a SPOS epoch")
    if not args.no_write:
        write("supernet", out)


def snas_times(splits, args) -> dict:
    """Figures 4 and 5: SNAS searches (level mild) over NAS-Bench-201 and over DARTS, wall time."""
    from raynas.trainables.snas import SNASConfig, result_of, search

    out = {}
    for space, epochs, net in (
        ("nasbench201", args.snas_epochs, {"channels": args.channels, "cells_per_stage": args.cells_per_stage}),
        ("darts", args.darts_epochs, {"channels": args.darts_channels, "layers": args.darts_layers}),
    ):
        cfg = SNASConfig(space=space, level="mild", epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                         device="cpu", **net)
        t = time.perf_counter()
        state = search(splits, cfg)
        seconds = time.perf_counter() - t
        prefix = "snas" if space == "nasbench201" else "snas_darts"
        out.update({f"{prefix}_search_s": seconds, f"{prefix}_epoch_s": seconds / epochs,
                    f"{prefix}_genotype": json.dumps(genotype_json(result_of(state, splits)["genotype"]))})
        print(f"SNAS on {space} ({net}): {epochs} epochs in {seconds:.1f} s ({seconds / epochs:.1f} s/epoch)")
    out["snas_darts_vs_nb201_epoch_ratio"] = out["snas_darts_epoch_s"] / out["snas_epoch_s"]
    print(f"SNAS on DARTS: {out['snas_darts_vs_nb201_epoch_ratio']:.1f}x an NB201 SNAS epoch")
    return out


if __name__ == "__main__":
    main()
