"""DNAS: latent-space maths, controller, constraints, determinism, checkpoints and explain()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raynas.runner import simulate
from raynas.searchers import get_searcher, searcher_options
from raynas.searchers._neural import encode_archs, train_epochs
from raynas.searchers.dnas import (
    DNASConfig,
    dense_region,
    dense_regions,
    latent_size_rule,
    latent_step,
    sample_latents,
    sample_region,
)
from raynas.spaces import get_space, space_names
from raynas.testing.conformance import FAST_OPTIONS
from raynas.trainables.evaluator import TabularEvaluator


def _dnas(space, seed=0, metric="val_accuracy", **kw):
    """DNAS with the conformance suite's small settings (a study of a few dozen queries in seconds)."""
    opts = {**FAST_OPTIONS["dnas"], **kw}
    return get_searcher("dnas", space, metric=metric, mode="max", seed=seed, **opts)


# ---------------------------------------------------------------------- Eq. 4
def test_dense_region_paper_example():
    region = dense_region([-0.28, -0.16, -0.19], 0.05)
    assert len(region) == 1
    assert region[0] == pytest.approx((-0.33, -0.11))


def test_dense_region_is_a_union_of_disjoint_intervals():
    region = dense_region([0.0, 1.0, 0.08], 0.05)
    assert region == [pytest.approx((-0.05, 0.13)), pytest.approx((0.95, 1.05))]
    draws = sample_region(region, np.random.default_rng(0), 2000)
    assert all(any(lo - 1e-12 <= x <= hi + 1e-12 for lo, hi in region) for x in draws)
    # Uniform over the union: the second interval holds 0.10 / 0.28 of the mass.
    assert np.mean(draws > 0.5) == pytest.approx(0.10 / 0.28, abs=0.04)


def test_sample_latents_mixture():
    rng = np.random.default_rng(0)
    regions = dense_regions(np.zeros((3, 4)), 0.05)
    edge = np.full((2, 4), 5.0)
    z, src = sample_latents(4000, 4, rng, regions, edge, eps_dense=0.25, eps_edge=0.25, sigma=0.05)
    assert z.shape == (4000, 4)
    assert np.mean(src == 1) == pytest.approx(0.25, abs=0.03)
    assert np.mean(src == 2) == pytest.approx(0.25, abs=0.03)
    assert np.all(np.abs(z[src == 1]) <= 0.05 + 1e-12)
    assert np.all(np.abs(z[src == 2] - 5.0) < 0.5)
    z, src = sample_latents(100, 4, rng, None, None, 0.25, 0.25, 0.05)
    assert np.all(src == 0)  # without regions or edge codes everything comes from the prior


def test_latent_size_rule():
    assert latent_size_rule(6, 15_625) == 26  # NAS-Bench-201
    assert latent_size_rule(27, 423_624) == 26  # NAS-Bench-101
    assert latent_size_rule(56, None) == 46  # DARTS-like


# ---------------------------------------------------------------------- controller
def _fit(searcher, archs, acc, flops=None, epochs=20, batch_size=32):
    """Train a searcher's controller on given cells with its own loss (no semi-supervision)."""
    s = searcher
    gen = torch.Generator().manual_seed(0)
    tokens = encode_archs(s.space, archs)
    data = {
        "tokens": tokens,
        "acc": torch.as_tensor(acc, dtype=torch.float32),
        "cost": torch.as_tensor(flops if flops is not None else np.zeros(len(archs)), dtype=torch.float32),
        "has_cost": torch.full((len(archs),), 1.0 if flops is not None else 0.0),
    }
    return train_epochs(
        s.model, s.optimizer, lambda b, g: s.model.loss(b, g, s.weights, s.config.disentangle),
        data, epochs, batch_size, gen,
    )


@pytest.mark.slow
def test_reconstruction_on_held_out_nb201_cells():
    # 40 epochs at lr 5e-3, batch 64 reach 97% (about 45 s on a busy 2-core machine); the
    # paper's lr of 1e-3 with batch 32 needs about 70 epochs for 99%, which took the test past
    # its timeout under load. An untrained decoder gets 20-40% of the tokens right.
    space = get_space("nasbench201")
    rng = np.random.default_rng(0)
    cells = list({space.to_string(a): a for a in (space.sample(rng) for _ in range(3000))}.values())
    train, held_out = cells[:2000], cells[2000:2500]
    s = _dnas(space, lr=5e-3)
    _fit(s, train, np.zeros(len(train)), epochs=40, batch_size=64)
    decoded = s.decode(s.encode(held_out))
    tokens = np.array([space.to_sequence(a) for a in held_out])
    got = np.array([space.to_sequence(a) for a in decoded])
    assert (got == tokens).mean() >= 0.95


def test_eq7_step_raises_accuracy_and_lowers_flops(macro_excerpt):
    space = macro_excerpt.space
    cells = macro_excerpt.candidates()  # 400 real cells
    acc = np.array([macro_excerpt.query(a)["test_accuracy"] for a in cells])
    flops = np.log([macro_excerpt.query(a)["flops"] for a in cells])
    s = _dnas(space)
    _fit(s, cells, (acc - acc.mean()) / acc.std(), (flops - flops.mean()) / flops.std(), epochs=10)
    z = torch.as_tensor(s.encode(cells[:200]))
    with torch.no_grad():
        acc0, cost0 = s.model.predict(z)
    z1 = latent_step(s.model, z, eta_acc=0.05, eta_cost=0.05)
    with torch.no_grad():
        acc1, cost1 = s.model.predict(z1)
    assert float((acc1 - acc0).mean()) > 0
    assert float((cost1 - cost0).mean()) < 0
    assert float(((acc1 > acc0) & (cost1 < cost0)).float().mean()) > 0.8


@pytest.mark.parametrize("name", space_names())
def test_decoded_random_latents_are_valid(name):
    """Masked decoding plus repair: every decoded cell is valid, on every space that imports.

    The controller first sees a few hundred valid cells (as it always has by its first decode
    in a study), so that it has learnt constraints a per-position mask cannot express (e.g.
    NAS-Bench-101's connectivity, DARTS's distinct inputs).
    """
    space = get_space(name)
    s = _dnas(space)
    rng = np.random.default_rng(0)
    cells = [space.sample(rng) for _ in range(500)]
    _fit(s, cells, np.zeros(len(cells)), epochs=5)
    z = np.random.default_rng(1).standard_normal((300, s.ctrl_config.latent_size))
    archs = s.decode(z)
    assert s.validity_rate == 1.0, s.decode_stats
    for arch in archs:
        assert arch is not None
        space.validate(arch)


def test_untrained_decoding_is_valid_on_nb201_and_macro():
    for name in ("nasbench201", "nasbench_macro"):
        s = _dnas(get_space(name))
        archs = s.decode(np.random.default_rng(1).standard_normal((200, s.ctrl_config.latent_size)) * 2)
        assert s.decode_stats.greedy_valid == 200 and all(a is not None for a in archs)


def test_validity_rate_counts_repairs():
    """NAS-Bench-Graph rejects all-skip cells; a controller biased to 'skip' must repair them."""
    space = get_space("nasbench_graph")
    s = _dnas(space)
    with torch.no_grad():
        s.model.head.bias.zero_()
        s.model.head.bias[1 + 9 + space.ops.index("skip")] = 50.0  # greedy decoding: all 'skip'
    archs = s.decode(np.zeros((20, s.ctrl_config.latent_size)))
    stats = s.decode_stats
    assert stats.greedy_valid == 0 and stats.repaired + stats.rejected == 20
    assert all(a is None or space.is_valid(a) for a in archs)


# ---------------------------------------------------------------------- studies
def test_flops_limit_holds_on_macro(macro_excerpt):
    bench = macro_excerpt
    flops = [bench.query(a)["flops"] for a in bench.candidates()]
    limit = float(np.quantile(flops, 0.3))
    cost_fn = TabularEvaluator(bench).cost
    s = _dnas(bench.space, metric="test_accuracy", cost_fn=cost_fn, max_cost={"flops": limit}, eps_edge=0.3,
              candidates=bench.candidates())
    assert s.use_cost and s.weights.lambda_flops == pytest.approx(0.3)
    state = simulate(s, bench, 30)
    assert len(state.rows) == 30 and all(r["error"] is None and r["flops"] <= limit for r in state.rows)
    assert s.rounds >= 3


def test_cost_term_off_without_a_cost_model(graph):
    s = _dnas(graph.space)
    assert not s.use_cost and s.weights.lambda_flops == 0.0


def test_cost_term_off_without_a_limit_or_cost_fn_even_where_the_space_has_a_cost_model():
    s = _dnas(get_space("nasbench201"))
    assert get_space("nasbench201").cost(get_space("nasbench201").sample(np.random.default_rng(0))) is not None
    assert not s.use_cost and s.weights.lambda_flops == 0.0


def test_a_flops_limit_brings_in_the_space_cost_model_real_flops():
    space = get_space("nasbench201")
    s = _dnas(space, max_cost={"flops": 100e6})
    assert s.use_cost and s.cost_fn == space.cost and s.weights.lambda_flops > 0
    # NB201's published 220.11969 MFLOPs of the all-conv3x3 cell, less its classifier's 10 bias adds
    assert space.cost(("nor_conv_3x3",) * 6)["flops"] == 220_119_690 - 10
    archs = [s.space.from_config(s.suggest(f"t{i}")) for i in range(4)]
    assert all(space.cost(a)["flops"] <= 100e6 for a in archs)


def test_ablation_switches(graph):
    ae = _dnas(graph.space, disentangle=False, dense_sampling=False)
    assert ae.weights.beta == 0.0
    state = simulate(ae, graph, 20)
    assert len(state.rows) == 20 and ae.rounds >= 2


def test_options_are_listed_with_paper_defaults():
    opts = searcher_options("dnas")
    for name in ("alpha", "lambda_flops", "mu_rec", "beta", "dense_sampling", "disentangle",
                 "n_unlabeled", "top_k", "sigma", "eps_dense", "eps_edge", "device"):
        assert opts[name] == getattr(DNASConfig, name)
    assert (opts["alpha"], opts["lambda_flops"], opts["mu_rec"], opts["beta"]) == (0.8, 0.3, 0.2, 1.0)
    assert (opts["top_k"], opts["sigma"], opts["n_unlabeled"]) == (3, 0.05, 10_000)


def test_explain_short_study(graph, tmp_path):
    from raynas.searchers.dnas import explain

    s = _dnas(graph.space, seed=1)
    simulate(s, graph, 20)
    s.save(str(tmp_path / "studies" / "dnas_1" / "searcher.pkl"))
    out = explain(tmp_path, tmp_path / "explain", span=2.0, steps=5, n_cells=300)
    for png in out["figures"].values():
        with open(png, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    scores = out["scores"]
    assert math.isfinite(scores["mig"]) and 0.0 <= scores["mig"] <= 1.0
    assert scores["attributes"] and all(
        math.isfinite(a["gap"]) and all(math.isfinite(m) for m in a["mi"]) for a in scores["attributes"].values()
    )
    assert "op@0" in scores["attributes"] and "depth" in scores["attributes"]
    assert all(math.isfinite(r) for r in scores["pearson"].values())
    assert "| dim |" in open(out["tables"]["traversals"]).read()
