"""Supernet evaluation (SPOS) on NAS-Bench-201, on the bundled digits (small settings)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raynas.runner._study import StudySpec, run_study
from raynas.spaces import get_space
from raynas.trainables.data import load_dataset
from raynas.trainables.networks._supernet import NASBench201Supernet, child_network, path_of
from raynas.trainables.supernet import (
    SupernetConfig,
    SupernetEvaluator,
    kendall_tau,
    load_state_file,
    sample_path,
    save_state_file,
    train_supernet,
)
from raynas.trainables.train import TrainConfig

SMALL = dict(channels=8, cells_per_stage=1)
RECIPE = TrainConfig(epochs=4, batch_size=32, lr=0.05, device="cpu")
#: DARTS's search network at its smallest: 4 channels, 3 cells (normal, reduce, reduce).
DARTS_SMALL = SupernetConfig(space="darts", channels=4, network={"layers": 3},
                             train=TrainConfig(epochs=3, batch_size=64, lr=0.05, device="cpu"))


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def splits():
    return load_dataset("digits", seed=0, channels=3)


@pytest.fixture(scope="module")
def trained(splits):
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums, hence the trained weights, depend on the thread count
    try:
        return train_supernet(splits, SupernetConfig(**SMALL, train=RECIPE))
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def darts_trained(splits):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_supernet(splits, DARTS_SMALL)
    finally:
        torch.set_num_threads(old)


def test_a_path_of_the_supernet_is_the_stand_alone_network(trained, splits):
    """The supernet is built from the stand-alone network's own op modules: a path, moved into a
    stand-alone NASBench201Network, computes the same function."""
    state, _ = trained
    net = NASBench201Supernet(10, **SMALL)
    net.load_state_dict(state["model"])
    net.eval()
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    space = get_space("nasbench201")
    for arch in (space.sample(np.random.default_rng(s)) for s in range(4)):
        child = child_network(net, arch).eval()
        with torch.no_grad():
            assert torch.allclose(child(x), net(x, arch), atol=1e-6)
        assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in net.parameters())


def test_weights_relax_a_path(trained):
    """A one-hot weight row per edge is the single path; the zero op contributes nothing."""
    state, _ = trained
    net = NASBench201Supernet(10, **SMALL)
    net.load_state_dict(state["model"])
    net.eval()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    arch = ("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")
    onehot = torch.nn.functional.one_hot(torch.tensor(path_of(arch)), 5).float()
    with torch.no_grad():
        assert torch.allclose(net(x, onehot), net(x, arch), atol=1e-6)
    with pytest.raises(ValueError, match="has 6 edges"):
        net(x, arch[:5])
    with pytest.raises(ValueError, match="shape"):
        net(x, onehot[:, :4])


def test_paths_are_sampled_uniformly():
    gen = torch.Generator().manual_seed(0)
    counts = np.zeros((6, 5))
    for _ in range(3000):
        counts[np.arange(6), sample_path(gen)] += 1
    assert np.abs(counts / 3000 - 0.2).max() < 0.03  # 3000 draws: sd of a share 0.0073


@pytest.mark.parametrize("space", ["nasbench201", "darts"])
def test_training_learns_and_resumes_exactly(space, request, splits, tmp_path, one_thread):
    state, curve = request.getfixturevalue("trained" if space == "nasbench201" else "darts_trained")
    cfg = SupernetConfig(**SMALL, train=RECIPE) if space == "nasbench201" else DARTS_SMALL
    assert [m["epoch"] for m in curve] == list(range(1, cfg.train.epochs + 1))
    # DARTS's tiny search network, on random paths of 8 ops (zero included), learns slowly.
    assert curve[-1]["train_loss"] < curve[0]["train_loss"] - (0.3 if space == "nasbench201" else 0.05)
    # Killed after epoch 2 (its state written to a file and read back), then resumed.

    class Killed(Exception):
        pass

    def checkpoint_then_die(metrics, st):
        save_state_file(st, tmp_path / f"e{metrics['epoch']}.pt")
        if metrics["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train_supernet(splits, cfg, on_epoch=checkpoint_then_die)
    resumed, curve2 = train_supernet(splits, cfg, state=load_state_file(tmp_path / "e2.pt"))
    assert [m["train_loss"] for m in curve2] == [m["train_loss"] for m in curve]
    for name, tensor in state["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    with pytest.raises(Exception, match="other settings"):
        train_supernet(splits, dataclasses.replace(cfg, channels=2), state=load_state_file(tmp_path / "e2.pt"))


def test_evaluation_is_deterministic_fast_and_ranks(trained, splits, tmp_path):
    state, _ = trained
    save_state_file(state, tmp_path / "supernet.pt")
    ev = SupernetEvaluator(tmp_path / "supernet.pt", splits)
    space = get_space("nasbench201")
    archs = [space.sample(np.random.default_rng(s)) for s in range(12)]
    first = [ev.evaluate(a)["val_accuracy"] for a in archs]
    again = [ev.evaluate(a)["val_accuracy"] for a in reversed(archs)][::-1]
    assert first == again  # BN statistics are recomputed per cell from fixed batches
    assert max(first) > 40 and max(first) - min(first) > 10  # it tells cells apart (chance: 10%)
    result = ev.evaluate(("none",) * 6)
    assert result["val_accuracy"] < 20 and result["key"] == space.key(("none",) * 6)
    assert 0 < ev.cost(("nor_conv_3x3",) * 6)["flops"] and ev.cost(("none",) * 6)["flops"] < ev.cost(
        ("nor_conv_3x3",) * 6)["flops"]
    with pytest.raises(Exception, match="not a readable supernet checkpoint"):
        (tmp_path / "cut.pt").write_bytes((tmp_path / "supernet.pt").read_bytes()[:100])
        SupernetEvaluator(tmp_path / "cut.pt", splits)


def test_any_searcher_searches_over_the_supernet(trained, splits):
    state, _ = trained
    ev = SupernetEvaluator(state, splits)
    _, st = run_study(StudySpec("evolution", 0, "val_accuracy", "max", 12), ev)
    assert len(st.rows) == 12 and all(r.get("error") is None for r in st.rows)
    _, again = run_study(StudySpec("evolution", 0, "val_accuracy", "max", 12), SupernetEvaluator(state, splits))
    assert [r["val_accuracy"] for r in st.rows] == [r["val_accuracy"] for r in again.rows]


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        kendall_tau([1.0], [1.0])


def test_tune_trainable_checkpoints_every_epoch(ray_session, splits, tmp_path):
    """The Tune trainable reports every epoch with a checkpoint, and its last checkpoint holds the
    weights that direct training gives."""
    from ray import tune

    from raynas.trainables.supernet import CHECKPOINT_FILE, supernet_trainable

    cfg = SupernetConfig(**SMALL, train=RECIPE, epochs=2)
    trainable = tune.with_parameters(supernet_trainable, data=ray_session.put(splits), supernet=cfg)
    grid = tune.Tuner(trainable, param_space={"seed": 0},
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name="supernet", verbose=0)).fit()
    result = grid[0]
    assert result.error is None
    with result.checkpoint.as_directory() as folder:
        state = load_state_file(f"{folder}/{CHECKPOINT_FILE}")
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a one-CPU Ray worker: float sums depend on the thread count
    try:
        direct, _ = train_supernet(splits, cfg)
    finally:
        torch.set_num_threads(old)
    assert state["epoch"] == 2
    for name, tensor in direct["model"].items():
        assert torch.equal(tensor, state["model"][name]), name


def test_enas_trains_shared_weights_through_its_evaluator(splits, one_thread):
    """ENAS's alternation: the controller (a searcher) proposes, each proposal trains the shared
    weights a little (the evaluator), the reward is a validation minibatch; the weights learn."""
    from raynas.trainables.supernet import SharedWeightsEvaluator

    def study():
        ev = SharedWeightsEvaluator(splits, SupernetConfig(**SMALL, train=RECIPE), train_steps=5)
        _, st = run_study(StudySpec("enas", 0, "val_accuracy", "max", 40), ev)
        return ev, [r["val_accuracy"] for r in st.rows]

    ev, rewards = study()
    assert ev.steps == 40 * 5 and len(rewards) == 40
    assert np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 5
    assert study()[1] == rewards  # seeded: the same run again


def test_an_enas_study_resumes_with_its_shared_weights(splits, one_thread, tmp_path):
    """The shared weights travel in the study's checkpoints: a study stopped after 10 queries and
    continued from its checkpoint with a fresh evaluator gives the uninterrupted study's rows;
    a checkpoint without them, or of other settings, is refused rather than silently restarted."""
    from raynas._state import StateFileError
    from raynas.runner import _study
    from raynas.runner._simulator import simulate
    from raynas.trainables.supernet import SharedWeightsEvaluator

    def evaluator(**change):
        return SharedWeightsEvaluator(splits, SupernetConfig(**{**SMALL, **change}, train=RECIPE), train_steps=2)

    spec = StudySpec("enas", 0, "val_accuracy", "max", 16)
    _, straight = run_study(spec, evaluator())
    ev = evaluator()
    searcher = _study.build_searcher(spec, ev)
    cut = simulate(searcher, ev, spec.budget, stop_after=10)
    _study.write_checkpoint(tmp_path, searcher, cut, ev)
    saved, _ = _study.newest_checkpoint(tmp_path)
    assert len(saved["sim"].rows) == 10 and saved["evaluator"]["steps"] == 10 * 2
    fresh = evaluator()
    searcher, state = _study._restore(saved, spec, fresh)
    assert fresh.steps == 20
    for name, tensor in ev.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], tensor), name
    _, resumed = run_study(spec, fresh, searcher, state)
    assert [r["config"] for r in resumed.rows] == [r["config"] for r in straight.rows]
    assert [r["val_accuracy"] for r in resumed.rows] == [r["val_accuracy"] for r in straight.rows]
    with pytest.raises(StateFileError, match="holds no state of the evaluator"):
        _study._restore({k: v for k, v in saved.items() if k != "evaluator"}, spec, evaluator())
    with pytest.raises(Exception, match="other settings"):
        _study._restore(saved, spec, evaluator(channels=4))


def test_macro_supernet_trains_and_scores_cells(splits, one_thread):
    """SPOS on NAS-Bench-Macro: a chain of choice blocks (the setting of the SPOS paper itself)."""
    from raynas.trainables.networks import build_network, count_params

    cfg = SupernetConfig(space="nasbench_macro", channels=8, network={"head_channels": 32}, train=RECIPE)
    state, curve = train_supernet(splits, cfg)
    assert state["config"]["network"] == {"init_channels": 8, "head_channels": 32}
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    ev = SupernetEvaluator(state, splits)
    space = get_space("nasbench_macro")
    archs = [space.sample(np.random.default_rng(s)) for s in range(6)]
    scores = [ev.evaluate(a)["val_accuracy"] for a in archs]
    assert scores == [ev.evaluate(a)["val_accuracy"] for a in archs] and max(scores) > 20
    net = build_network(space, archs[0], 10, init_channels=8, head_channels=32)
    assert ev.cost(archs[0])["params"] == pytest.approx(count_params(net) / 1e6)
    _, st = run_study(StudySpec("evolution", 0, "val_accuracy", "max", 8), ev)
    assert len(st.rows) == 8
    with pytest.raises(ValueError, match="cells_per_stage is a NAS-Bench-201 setting"):
        SupernetConfig(space="nasbench_macro", cells_per_stage=1)
    with pytest.raises(ValueError, match="no supernet for space 'nasbench101'"):
        SupernetConfig(space="nasbench101")


@pytest.mark.slow
def test_raynas_supernet_train_then_search_under_flops_limits(ray_session, tmp_path):
    """Train once, then search under several FLOPs limits in one sweep: every cell found keeps to
    its study's limit, and a finished sweep resumed runs nothing again."""
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from raynas.cli import main

    run = CliRunner()
    res = run.invoke(main, ["supernet", "train", "--epochs", "2", "--channels", "8", "--cells-per-stage", "1",
                            "--out", str(tmp_path / "sn"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert load_state_file(tmp_path / "sn" / "supernet.pt")["epoch"] == 2
    args = ["supernet", "search", "--supernet", str(tmp_path / "sn" / "supernet.pt"), "--methods", "evolution,random",
            "--seeds", "1", "--budget", "8", "--max-flops", "none,0.15", "--out", str(tmp_path / "search"), "--quiet"]
    res = run.invoke(main, args)
    assert res.exit_code == 0, res.output
    rows = pq.read_table(tmp_path / "search" / "results.parquet").to_pylist()
    assert len(rows) == 2 * 2 * 8 and not any(r["error"] for r in rows)
    limited = [r for r in rows if r["max_flops"] == 0.15]
    assert len(limited) == 16 and all(r["flops"] <= 0.15 for r in limited)
    assert "| 0.15 | evolution |" in res.output
    again = run.invoke(main, ["resume", str(tmp_path / "search"), "--quiet"])
    assert again.exit_code == 0, again.output
    assert pq.read_table(tmp_path / "search" / "results.parquet").to_pylist() == rows
    # The same sweep spelt as a comparison gives the same rows.
    same = run.invoke(main, ["compare", "--trainable", "supernet", "--supernet", str(tmp_path / "sn" / "supernet.pt"),
                             "--methods", "evolution,random", "--seeds", "1", "--budget", "8", "--max-flops", "none,0.15",
                             "--out", str(tmp_path / "as-compare"), "--quiet"])
    assert same.exit_code == 0, same.output
    assert pq.read_table(tmp_path / "as-compare" / "results.parquet").to_pylist() == rows
    bad = run.invoke(main, [*args[:-3], "--max-flops", "lots", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "'lots' is neither a number nor none" in bad.output and not (tmp_path / "x").exists()
    (tmp_path / "lone").mkdir()
    (tmp_path / "lone" / "supernet.pt").write_bytes((tmp_path / "sn" / "supernet.pt").read_bytes())
    lone = run.invoke(main, [*args[:3], str(tmp_path / "lone" / "supernet.pt"), *args[4:-3], "--out", str(tmp_path / "y")])
    assert lone.exit_code == 2 and "supernet.json is missing" in lone.output and not (tmp_path / "y").exists()


# --- DARTS ------------------------------------------------------------------------------------
def test_a_darts_path_is_the_stand_alone_child(one_thread):
    """A DARTS genotype's path through the supernet, moved into a stand-alone DartsNetwork, computes
    the same function; so does a SNAS child with dropped edges (a node left without any gives
    zeros), and a one-hot weight tensor with the zero op where the path has no edge."""
    from raynas.spaces._darts import NodeGenotype
    from raynas.trainables.networks._supernet_darts import (
        DartsSupernet,
        darts_child_network,
        darts_path,
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DartsSupernet(10, channels=4, layers=3)
        for m in net.modules():  # statistics unlike a fresh BN's, so that a wrong copy shows
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    space = get_space("darts")
    dropped = NodeGenotype(
        normal=((("sep_conv_3x3", 0),), (), (("skip_connect", 1), ("max_pool_3x3", 2), ("dil_conv_5x5", 0)),
                (("avg_pool_3x3", 4),)),
        reduce=((), (("sep_conv_5x5", 0),), (), (("skip_connect", 0), ("dil_conv_3x3", 3))))
    for arch in [space.sample(np.random.default_rng(s)) for s in range(2)] + [dropped]:
        child = darts_child_network(net, arch).eval()
        path = darts_path(arch)
        onehot = torch.nn.functional.one_hot(torch.tensor([max(k, 0) for k in path]), 8).float()
        with torch.no_grad():
            out = net(x, arch)
            assert torch.allclose(child(x), out, atol=1e-5)
            assert torch.equal(net(x, onehot), out) and torch.equal(net(x, path), out)
        assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in net.parameters())
    assert darts_path(dropped)[2:5] == [-1, -1, -1] and darts_path(dropped)[14:16] == [-1, -1]
    with pytest.raises(ValueError, match="28 entries"):
        net(x, darts_path(dropped)[:14])


def test_darts_paths_are_sampled_uniformly():
    """A SPOS path is a genotype of the space: per node two distinct inputs, each pair of inputs
    and each op equally likely."""
    from raynas.trainables.networks._supernet_darts import EDGES

    gen = torch.Generator().manual_seed(0)
    ops = np.zeros(8)
    pairs = np.zeros(10)  # the 10 input pairs of node 3 (inputs 0..4), normal cell
    for _ in range(2000):
        path = np.array(sample_path(gen, "darts")).reshape(2, len(EDGES))
        for cell in path:
            for n, edges in enumerate(((0, 1), (2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12, 13))):
                chosen = [e for e in edges if cell[e] >= 0]
                assert len(chosen) == 2, (n, cell)
                ops[cell[chosen]] += 1
        inputs = [i for i in range(5) if path[0][9 + i] >= 0]
        pairs[[(a, b) for a in range(5) for b in range(a + 1, 5)].index(tuple(inputs))] += 1
    assert np.abs(ops / ops.sum() - 1 / 8).max() < 0.01  # 32,000 draws
    assert np.abs(pairs / 2000 - 0.1).max() < 0.025  # 2000 draws: sd of a share 0.0067


def test_darts_supernet_scores_genotypes(darts_trained, splits):
    """`SupernetEvaluator` over DARTS: deterministic scores, the stand-alone child's cost, and a
    searcher running over DARTS genotypes."""
    from raynas.trainables.networks import build_network, count_params

    state, _ = darts_trained
    assert state["config"]["network"] == {"channels": 4, "layers": 3}
    ev = SupernetEvaluator(state, splits, bn_batches=2)
    space = get_space("darts")
    archs = [space.sample(np.random.default_rng(s)) for s in range(4)]
    scores = [ev.evaluate(a)["val_accuracy"] for a in archs]
    # Above chance (10%, sd 1.6 points on 359 images) after 3 epochs of the tiny search network.
    assert scores == [ev.evaluate(a)["val_accuracy"] for a in archs] and max(scores) > 15
    net = build_network(space, archs[0], 10, channels=4, layers=3)
    assert ev.cost(archs[0])["params"] == pytest.approx(count_params(net) / 1e6)
    _, st = run_study(StudySpec("random", 0, "val_accuracy", "max", 4), ev)
    assert len(st.rows) == 4 and all(r.get("error") is None for r in st.rows)


@pytest.mark.slow
def test_raynas_supernet_train_then_search_on_darts(ray_session, tmp_path):
    """`raynas supernet train --space darts` then `supernet search` over DARTS genotypes, each scored
    with the FLOPs of its stand-alone network; --layers is a DARTS option only."""
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from raynas.cli import main

    run = CliRunner()
    res = run.invoke(main, ["supernet", "train", "--space", "darts", "--epochs", "1", "--channels", "4", "--layers",
                            "3", "--out", str(tmp_path / "sn"), "--quiet"])
    assert res.exit_code == 0, res.output
    state = load_state_file(tmp_path / "sn" / "supernet.pt")
    assert state["epoch"] == 1 and state["config"]["network"] == {"channels": 4, "layers": 3}
    res = run.invoke(main, ["supernet", "search", "--supernet", str(tmp_path / "sn" / "supernet.pt"), "--methods",
                            "random", "--seeds", "1", "--budget", "4", "--max-flops", "none,0.12",
                            "--out", str(tmp_path / "search"), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = pq.read_table(tmp_path / "search" / "results.parquet").to_pylist()
    assert len(rows) == 8 and not any(r["error"] for r in rows)
    assert all(r["flops"] <= 0.12 for r in rows if r["max_flops"] == 0.12) and min(r["flops"] for r in rows) > 0
    bad = run.invoke(main, ["supernet", "train", "--layers", "3", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--layers applies only to --space darts" in bad.output
