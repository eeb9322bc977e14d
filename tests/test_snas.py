"""SNAS on the NAS-Bench-201 and DARTS supernets, on the bundled digits (small settings)."""

from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import TensorDataset

from raynas.spaces._darts import OPS as DARTS_OPS
from raynas.spaces._darts import NodeGenotype
from raynas.spaces._nasbench201 import OPS
from raynas.trainables.data import load_dataset
from raynas.trainables.networks._supernet import NASBench201Supernet
from raynas.trainables.networks._supernet_darts import DartsSupernet
from raynas.trainables.snas import (
    LEVELS,
    SNASConfig,
    derive,
    edge_costs,
    genotype_json,
    gumbel_softmax,
    result_of,
    search,
)

#: Small enough for CI: 8 channels, one cell per stage, 12 epochs of which 4 train the weights
#: alone, and a larger alpha learning rate than the paper's (its 3e-4 is meant for ~100k steps).
SMALL = dict(channels=8, cells_per_stage=1, epochs=12, warmup_epochs=4, arch_lr=0.1, lr=0.05, device="cpu")
#: The gap between the search's and the derived child's validation accuracy (points) that the
#: paper's claim allows here, for the unconstrained and the mild search.
GAP = 5.0
#: DARTS's search network at its smallest (4 channels; cells normal, reduce, reduce); every
#: step runs 7 ops on each of 14 edges, so its searches train on a part of the training set.
DARTS_SMALL = dict(space="darts", channels=4, layers=3, epochs=5, warmup_epochs=2, arch_lr=0.1, lr=0.05,
                   batch_size=32, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def splits():
    return load_dataset("digits", seed=0, channels=3)


def head(splits, n: int):
    """``splits`` with only its first ``n`` training images (validation unchanged)."""
    x, y = splits.train.tensors
    return dataclasses.replace(splits, train=TensorDataset(x[:n], y[:n]))


@pytest.fixture(scope="module")
def by_level(splits):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {lv: result_of(search(splits, SNASConfig(level=lv, **SMALL)), splits)
                for lv in ("none", "mild", "aggressive")}
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def darts_by_level(splits):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {lv: result_of(search(head(splits, 320), SNASConfig(level=lv, **DARTS_SMALL)), splits)
                for lv in ("none", "mild", "aggressive")}
    finally:
        torch.set_num_threads(old)


def test_gumbel_samples_approach_one_hot_as_the_temperature_drops():
    log_p = torch.log_softmax(torch.tensor([[1.0, 0.5, 0.0, -0.5, -1.0]]).expand(4000, -1), -1)
    peaks = {}
    for tau in (1.0, 0.3, 0.1, 0.03):
        z = gumbel_softmax(log_p, tau, torch.Generator().manual_seed(0))
        assert torch.allclose(z.sum(-1), torch.ones(4000))
        peaks[tau] = float(z.max(-1).values.mean())
    assert peaks[1.0] < peaks[0.3] < peaks[0.1] < peaks[0.03] and peaks[1.0] < 0.7 and peaks[0.03] > 0.97
    # The hard decision follows softmax(alpha) (the Gumbel-max property), whatever the temperature.
    z = gumbel_softmax(log_p, 0.03, torch.Generator().manual_seed(1))
    shares = torch.bincount(z.argmax(-1), minlength=5).float() / 4000
    assert torch.allclose(shares, log_p[0].exp(), atol=0.03)


def test_temperature_anneals_from_1_to_003():
    cfg = SNASConfig(epochs=10)
    taus = [cfg.temperature_at(e) for e in range(10)]
    assert taus[0] == 1.0 and taus[-1] == pytest.approx(0.03) and taus == sorted(taus, reverse=True)


def test_local_costs_rank_the_ops_as_appendix_f():
    """Params, FLOPs and MAC together tell all ops apart: none < skip < pool < 1x1 < 3x3."""
    costs = edge_costs(NASBench201Supernet(10, channels=8, cells_per_stage=1), image_size=8)
    assert costs.shape == (6, 5) and torch.equal(costs, costs[:1].expand(6, -1))
    order = [OPS.index(op) for op in ("none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")]
    row = costs[0][order].tolist()
    assert row[0] == 0 and row == sorted(row) and len(set(row)) == 5 and row[-1] == pytest.approx(3.0)


@pytest.mark.slow
@pytest.mark.parametrize("space", ["nasbench201", "darts"])
def test_stronger_constraints_derive_smaller_children(space, request):
    by_level = request.getfixturevalue("by_level" if space == "nasbench201" else "darts_by_level")
    params = [by_level[lv]["params"] for lv in ("none", "mild", "aggressive")]
    flops = [by_level[lv]["flops"] for lv in ("none", "mild", "aggressive")]
    assert params == sorted(params, reverse=True) and params[0] > params[-1]
    assert flops == sorted(flops, reverse=True) and flops[0] > flops[-1]
    if space == "nasbench201":
        assert "none" in by_level["aggressive"]["genotype"]  # the zero op drops edges
        for found in by_level.values():
            assert len(found["genotype"]) == 6 and set(found["genotype"]) <= set(OPS)
        return
    edges = {lv: sum(len(node) for cell in found["genotype"] for node in cell) for lv, found in by_level.items()}
    assert edges["aggressive"] < edges["none"] <= 28  # the zero op drops edges: fewer than 2 x 14 remain


@pytest.mark.slow
def test_the_child_keeps_the_search_accuracy_without_finetuning(by_level):
    for level in ("none", "mild"):
        found = by_level[level]
        assert found["search_val_accuracy"] > 80  # digits, 10 classes
        assert abs(found["child_val_accuracy"] - found["search_val_accuracy"]) <= GAP, level


@pytest.mark.parametrize("space", ["nasbench201", "darts"])
def test_an_interrupted_search_resumes_exactly(space, splits, one_thread):
    if space == "darts":
        splits = head(splits, 128)
    small = SMALL if space == "nasbench201" else {**DARTS_SMALL, "batch_size": 64}
    cfg = SNASConfig(level="mild", **{**small, "channels": 4, "epochs": 3, "warmup_epochs": 1})
    straight = search(splits, cfg)
    saved = {}

    class Killed(Exception):
        pass

    def die_after_2(metrics, state):
        saved["state"] = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
        if metrics["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        search(splits, cfg, on_epoch=die_after_2)
    resumed = search(splits, cfg, state=saved["state"])
    assert torch.equal(resumed["log_alpha"], straight["log_alpha"])
    assert [m["train_loss"] for m in resumed["curve"]] == [m["train_loss"] for m in straight["curve"]]
    assert derive(resumed["log_alpha"], space) == derive(straight["log_alpha"], space)
    with pytest.raises(Exception, match="other settings"):
        search(splits, dataclasses.replace(cfg, level="aggressive"), state=saved["state"])


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown constraint level 'extreme'"):
        SNASConfig(level="extreme")
    with pytest.raises(ValueError, match="not 'nasbench_macro'"):
        SNASConfig(space="nasbench_macro")
    with pytest.raises(ValueError, match="layers must be at least 3"):
        SNASConfig(space="darts", layers=2)
    with pytest.raises(ValueError, match="temperature_min"):
        SNASConfig(temperature_min=2.0)
    assert SNASConfig(lam=0.3).penalty == 0.3 and SNASConfig(level="moderate").penalty == LEVELS["moderate"]


@pytest.mark.slow
@pytest.mark.parametrize("space", ["nasbench201", "darts"])
def test_raynas_snas_sweep_writes_one_row_and_genotype_per_trial(space, ray_session, tmp_path):
    from raynas.cli import main

    out = tmp_path / "sweep"
    epochs = 4 if space == "nasbench201" else 2
    seeds = 2 if space == "nasbench201" else 1  # DARTS's search network is the slow one
    network = ["cells_per_stage=1"] if space == "nasbench201" else ["layers=3", "batch_size=128"]
    args = ["snas", "--space", space, "--levels", "none,0.5", "--seeds", str(seeds), "--epochs", str(epochs),
            "--set", "channels=4", *[a for n in network for a in ("--set", n)], "--set", "warmup_epochs=1",
            "--set", "arch_lr=0.1", "--set", "device=cpu", "--out", str(out), "--quiet"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    rows = pq.read_table(out / "snas.parquet").to_pylist()
    assert [(r["level"], r["seed"]) for r in rows] == [(lv, sd) for lv in ("none", "0.5") for sd in range(seeds)]
    assert [r["lambda"] for r in rows] == [0.0] * seeds + [0.5] * seeds and not any(r["error"] for r in rows)
    for r in rows:
        saved = json.loads((out / "genotypes" / f"{r['level']}_seed{r['seed']}.json").read_text())
        assert saved["genotype"] == json.loads(r["genotype"]) and saved["params"] == r["params"] > 0
        assert 0 <= r["child_val_accuracy"] <= 100 and r["epochs"] == epochs
        if space == "darts":  # the file goes straight into `raynas train --genotype`
            from raynas.runner._snas_run import read_genotype_file

            assert isinstance(read_genotype_file(out / "genotypes" / f"{r['level']}_seed{r['seed']}.json")[1],
                              NodeGenotype)
    again = CliRunner().invoke(main, ["resume", str(out), "--quiet"])  # finished: nothing runs again
    assert again.exit_code == 0, again.output
    assert pq.read_table(out / "snas.parquet").to_pylist() == rows
    bad = CliRunner().invoke(main, ["snas", "--levels", "extreme", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown --levels extreme" in bad.output and not (tmp_path / "x").exists()


def test_a_derived_cell_goes_straight_into_training(tmp_path):
    """`raynas train --genotype FILE` trains the cell of a genotype file from scratch."""
    from raynas.cli import main

    cell = ["skip_connect", "nor_conv_3x3", "none", "skip_connect", "skip_connect", "nor_conv_1x1"]
    path = tmp_path / "mild_seed0.json"
    path.write_text(json.dumps({"space": "nasbench201", "genotype": cell, "level": "mild"}))
    args = ["train", "--genotype", str(path), "--epochs", "2", "--network", "channels=4", "--network",
            "cells_per_stage=1", "--batch-size", "64", "--lr", "0.05", "--out", str(tmp_path / "res.json")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "res.json").read_text())
    assert len(saved["curve"]) == 2 and saved["curve"][-1]["val_accuracy"] > 50 and saved["params"] > 0
    assert "|nor_conv_3x3~0|" in res.output and "test_accuracy" in res.output
    both = CliRunner().invoke(main, ["train", "--genotype", str(path), "--arch", "x"])
    assert both.exit_code == 2 and "one of --genotype FILE or --arch CELL" in both.output
    (tmp_path / "junk.json").write_text("{}")
    junk = CliRunner().invoke(main, ["train", "--genotype", str(tmp_path / "junk.json")])
    assert junk.exit_code == 2 and "is not a cell file of `raynas snas`" in junk.output


# --- DARTS ------------------------------------------------------------------------------------
def test_darts_local_costs_follow_appendix_f(one_thread):
    """28 rows (normal edges, then reduction edges) of 8 ops: zero is free, a skip is cheaper than
    a pooling op (FLOPs, Eq. 38-39) except on a reduction cell's input edges, where it is a
    FactorizedReduce of two convs; the 5x5 separable conv costs most on every edge."""
    costs = edge_costs(DartsSupernet(10, channels=4, layers=3), image_size=8)
    assert costs.shape == (28, 8)
    col = {op: DARTS_OPS.index(op) for op in DARTS_OPS}
    assert (costs[:, col["none"]] == 0).all() and torch.allclose(costs[:, col["sep_conv_5x5"]], torch.full((28,), 3.0))
    assert torch.equal(costs[:14], costs[:1].expand(14, -1))  # one resolution in a normal cell
    strided = [14 + e for e in (0, 1, 2, 3, 5, 6, 9, 10)]  # reduction edges from the cell inputs
    for row in range(28):
        skip, pool = costs[row, col["skip_connect"]], costs[row, col["avg_pool_3x3"]]
        assert (skip > pool) if row in strided else (0 < skip < pool)
        assert pool < costs[row, col["dil_conv_3x3"]] < costs[row, col["sep_conv_3x3"]]


def test_a_derived_darts_child_drops_edges_and_trains(tmp_path, one_thread):
    """The argmax child keeps, per node, the edges where the zero op lost (0 to all of them);
    its JSON goes straight into `raynas train --genotype`."""
    from raynas.cli import main
    from raynas.trainables.networks import network_cost

    log_alpha = torch.zeros(28, 8)
    log_alpha[:, 0] = 1.0  # zero wins everywhere ...
    log_alpha[0, DARTS_OPS.index("sep_conv_3x3")] = 2.0  # ... but on normal node 0's edge from c_{k-2},
    log_alpha[9:12, DARTS_OPS.index("skip_connect")] = 2.0  # node 3's from inputs 0, 1 and node 0,
    log_alpha[14 + 4, DARTS_OPS.index("max_pool_3x3")] = 2.0  # and reduce node 1's from node 0.
    child = derive(log_alpha, "darts")
    assert child == NodeGenotype(
        normal=((("sep_conv_3x3", 0),), (), (), (("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 2))),
        reduce=((), (("max_pool_3x3", 2),), (), ()))
    full = network_cost("darts", derive(torch.zeros(28, 8).index_fill_(1, torch.tensor([4]), 1.0), "darts"), 10, 8,
                        channels=4, layers=3)
    assert network_cost("darts", child, 10, 8, channels=4, layers=3)["params"] < full["params"]
    path = tmp_path / "aggressive_seed0.json"
    path.write_text(json.dumps({"space": "darts", "genotype": genotype_json(child), "level": "aggressive"}))
    args = ["train", "--genotype", str(path), "--epochs", "1", "--network", "channels=4", "--network", "layers=3",
            "--batch-size", "64", "--lr", "0.05", "--out", str(tmp_path / "res.json")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "res.json").read_text())
    assert len(saved["curve"]) == 1 and 0 < saved["params"] < full["params"]
    assert "reduce=[[], [('max_pool_3x3', 2)], [], []]" in res.output


@pytest.mark.parametrize("genotype, message", [
    ({"normal": [[]] * 4}, 'is {"normal": [...4 nodes...], "reduce": [...]}'),
    ({"normal": [[]] * 3, "reduce": [[]] * 4}, "normal must list the edges of each of its 4 nodes"),
    ({"normal": [[["conv_7x7", 0]], [], [], []], "reduce": [[]] * 4}, "normal node 0: unknown op 'conv_7x7'"),
    ({"normal": [[], [["skip_connect", 3]], [], []], "reduce": [[]] * 4}, "normal node 1: input 3 does not exist"),
    ({"normal": [[]] * 4, "reduce": [[], [], [["skip_connect", 1], ["max_pool_3x3", 1]], []]},
     "reduce node 2: input 1 appears twice"),
    ({"normal": [[]] * 4, "reduce": [[], [], [["skip_connect"]], []]}, "reduce node 2: an edge is an (op, input) pair"),
    ("Genotype(normal=[('sep_conv_3x3', 0)])", "not a DARTS genotype string"),
])
def test_malformed_darts_genotype_files_are_one_line_errors(tmp_path, genotype, message):
    from raynas.cli import main

    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"space": "darts", "genotype": genotype}))
    res = CliRunner().invoke(main, ["train", "--genotype", str(path)])
    assert res.exit_code == 2 and message in res.output and str(path) in res.output
    assert len(res.output.strip().splitlines()) == 1
