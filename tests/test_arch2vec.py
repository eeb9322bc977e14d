"""arch2vec: the autoencoder, pretraining quality, the embedding cache, and both searchers.

The contract every searcher keeps (determinism, checkpoints, duplicates, limits, failures, the
Tune path) is checked in ``test_conformance.py``. Pretraining here uses small option sets (a
sample, few epochs) in a temporary cache folder; the two reconstruction tests of Table 1 train
longer and are marked slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from raynas._errors import UnknownNameError
from raynas.runner import simulate
from raynas.searchers import OptionError, get_searcher, searcher_options
from raynas.searchers.arch2vec import (
    CACHE_STATS,
    Arch2VecBOConfig,
    Arch2VecBOSearcher,
    Arch2VecRLSearcher,
    PretrainOptions,
    cache_path,
    clear_memo,
    load_embeddings,
    pretrain,
)
from raynas.searchers.arch2vec._pretrain import encode
from raynas.searchers.arch2vec._surrogate import (
    BayesianLinearRegression,
    Surrogate,
    expected_improvement,
)
from raynas.spaces import get_space
from raynas.testing.conformance import FAST_OPTIONS

#: A pretraining that takes a few seconds on one core (NAS-Bench-201: 1,000 of 6,466 cells).
SMALL = dict(pretrain_size=1000, pretrain_epochs=2, pretrain_latent_points=500)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("arch2vec-cache"))


def _make(method, space, cache, seed=0, metric="test_accuracy", **kw):
    return get_searcher(method, space, metric=metric, mode="max", seed=seed, cache_dir=cache, **{**SMALL, **kw})


def _options(**kw) -> PretrainOptions:
    return PretrainOptions(**{"size": 1000, "epochs": 2, "latent_points": 500, **kw})


# ---------------------------------------------------------------------- options
def test_defaults_are_the_papers():
    bo, rl = searcher_options("arch2vec-bo"), searcher_options("arch2vec-rl")
    for opts in (bo, rl):
        assert (opts["latent_size"], opts["hidden_size"], opts["gin_layers"]) == (16, 128, 4)
        assert (opts["pretrain_lr"], opts["pretrain_batch_size"], opts["pretrain_epochs"]) == (1e-3, 32, 10)
        assert opts["pretrain_size"] is None
    assert (bo["n_initial"], bo["batch"], bo["surrogate"]) == (16, 5, "dngo")
    # the searchers' defaults and the pretraining's are one option set (one cache file)
    assert Arch2VecBOConfig().pretrain_options() == PretrainOptions()
    assert (rl["batch"], rl["lr"], rl["sigma"]) == (16, 1e-2, 1.0)


@pytest.mark.parametrize(
    ("method", "options", "words"),
    [
        ("arch2vec-bo", {"surrogate": "gp"}, "surrogate must be one of ('dngo', 'blr'), got 'gp'"),
        ("arch2vec-bo", {"batch": 0}, "batch must be >= 1, got 0"),
        ("arch2vec-bo", {"latent_size": 0}, "latent_size must be >= 1, got 0"),
        ("arch2vec-rl", {"pretrain_holdout": 1.0}, "holdout must be in [0, 1), got 1.0"),
        ("arch2vec-rl", {"sigma": -1.0}, "sigma must be > 0, got -1.0"),
        ("arch2vec-rl", {"pretrain_size": 1}, "size must be >= 2 or null, got 1"),
        ("arch2vec-bo", {"pretrain_epochs": "ten"}, "option pretrain_epochs of arch2vec-bo must be of type int"),
    ],
)
def test_bad_options_get_clear_errors(method, options, words, cache):
    with pytest.raises(OptionError) as info:
        get_searcher(method, "nasbench201", metric="m", mode="max", cache_dir=cache, **options)
    assert words in str(info.value)


def test_unknown_option_lists_the_valid_ones(cache):
    with pytest.raises(UnknownNameError) as info:
        get_searcher("arch2vec-bo", "nasbench201", metric="m", mode="max", latent_dim=16)
    assert "latent_dim" in str(info.value) and "latent_size" in str(info.value)


# ---------------------------------------------------------------------- the model and pretraining
def test_pretraining_is_seeded_and_leaves_global_rngs_alone():
    space = get_space("nasbench201")
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    a = pretrain(space, _options(size=300, epochs=1, latent_points=50), progress=False)
    assert torch.rand(1) == expected, "pretraining used the global torch generator"
    b = pretrain(space, _options(size=300, epochs=1, latent_points=50), progress=False)
    c = pretrain(space, _options(size=300, epochs=1, latent_points=50, seed=1), progress=False)
    assert np.array_equal(a.z, b.z) and a.keys == b.keys
    assert not np.allclose(a.z, c.z)
    # the pool is the whole space (one cell per key) even when training on a sample
    assert len(a.keys) == len(set(a.keys)) == space.n_classes == a.metrics["n_pool"]
    assert a.metrics["n_train"] + a.metrics["n_test"] == 300


def test_metrics_of_a_short_pretraining_are_measured(cache):
    emb = load_embeddings(get_space("nasbench201"), _options(), cache, progress=False)
    m = emb.metrics
    for name in ("ops_accuracy", "adj_accuracy", "reconstruction_accuracy", "validity", "uniqueness"):
        assert 0.0 <= m[name] <= 100.0, name
    assert m["reconstruction_accuracy"] == min(m["ops_accuracy"], m["adj_accuracy"])
    assert m["ops_accuracy"] > 30.0  # 56 steps; chance is 1 in 7 (the 5 ops, input, output)
    assert m["losses"][1] < m["losses"][0]
    assert emb.z.shape == (6466, 16) and np.isfinite(emb.z).all()


def test_nb201_validity_is_also_measured_as_the_published_code_does(cache):
    """The published code calls an NB201 decoding valid when its ops are in place (input, six
    ops, output), whatever its adjacency, and counts uniqueness by graph_util.hash_module; our
    strict validity also requires NB201's cell graph. Both are in the metrics."""
    from raynas.searchers.arch2vec._pretrain import _published_nb201
    from raynas.spaces._nb101_cell import _LABEL, graph_hash, module_hash

    space = get_space("nasbench201")
    adj, ops = space.to_graph(space.sample(np.random.default_rng(0)))
    cls = ops.argmax(1)  # input 5, six ops in 0..4, output 6
    wrong = adj.copy()
    wrong[0, 7] = 1  # an extra edge: no NB201 cell, valid for the published code
    bad_ops = cls.copy()
    bad_ops[3] = 6  # an output vertex inside the cell: invalid for both
    m = _published_nb201(np.stack([cls, cls, bad_ops, cls]), np.stack([adj, wrong, adj, adj]), space)
    assert m == {"validity_published": 75.0, "uniqueness_published": pytest.approx(200 / 3)}
    # the hash is the official one, and isomorphic relabellings agree
    nb101 = get_space("nasbench101")
    cell = nb101.sample(np.random.default_rng(1))
    assert graph_hash(cell.matrix, [_LABEL[o] for o in cell.ops]) == module_hash(cell.matrix, cell.ops)
    perm = [0, 2, 1, 3, 4, 5, 6, 7][: len(cls)]
    swapped = adj[np.ix_(perm, perm)]
    assert graph_hash(swapped.tolist(), list(cls[perm])) == graph_hash(adj.tolist(), list(cls))
    emb = load_embeddings(space, _options(), cache, progress=False)
    assert 0.0 <= emb.metrics["validity"] <= emb.metrics["validity_published"] <= 100.0


def _relabelled_nb101(space, rng):
    """A NAS-Bench-101 cell and the same cell with its interior vertices permuted."""
    while True:
        cell = space.sample(rng)
        spec = json.loads(space.to_string(cell))
        n = len(spec["ops"])
        if n >= 5:
            break
    perm = [0, *(1 + rng.permutation(n - 2)), n - 1]  # new position -> old vertex
    matrix = np.array(spec["matrix"])[np.ix_(perm, perm)]
    # keep the matrix upper triangular: relabel only if the permutation is a topological order
    if np.tril(matrix).any():
        return None
    ops = [spec["ops"][p] for p in perm]
    return cell, space.from_string(json.dumps({"matrix": matrix.tolist(), "ops": ops}))


def test_embedding_is_invariant_to_isomorphic_relabelling(cache):
    # NAS-Bench-201: encodings that share a key (the same cell up to isomorphism) share one
    # embedding, that of the key's canonical representative.
    space = get_space("nasbench201")
    groups: dict[str, list] = {}
    for arch in space.enumerate():
        groups.setdefault(space.key(arch), []).append(arch)
    twins = [g for g in groups.values() if len(g) >= 3][:20]
    assert twins
    s = _make("arch2vec-bo", space, cache)
    emb = s.embeddings
    for group in twins:
        z = emb.embed(group)
        assert np.array_equal(z, np.repeat(z[:1], len(group), axis=0))
        assert np.array_equal(z[0], s.z_of(group[-1], space.key(group[-1])))
    # and distinct cells get distinct embeddings
    some = [g[0] for g in list(groups.values())[:200]]
    assert len({emb.embed([a])[0].tobytes() for a in some}) == 200
    # NAS-Bench-101: the encoder itself is invariant to relabelling the vertices of a cell.
    nb101 = get_space("nasbench101")
    e101 = load_embeddings(nb101, _options(size=500, epochs=1, latent_points=0), cache, progress=False)
    rng = np.random.default_rng(0)
    pairs = [p for p in (_relabelled_nb101(nb101, rng) for _ in range(200)) if p is not None]
    pairs = [(a, b) for a, b in pairs if nb101.to_string(a) != nb101.to_string(b)][:10]
    assert len(pairs) >= 3
    for a, b in pairs:
        assert nb101.key(a) == nb101.key(b)
        za, zb = encode(e101.model, nb101, [a, b])
        assert np.allclose(za, zb, atol=1e-5)


def test_construction_reads_no_embeddings_until_the_first_proposal(tmp_path):
    before = dict(CACHE_STATS)
    s = get_searcher("arch2vec-rl", "nasbench_macro", metric="m", mode="max", cache_dir=str(tmp_path),
                     **{**SMALL, "pretrain_size": 200, "pretrain_epochs": 1})
    assert CACHE_STATS == before and not list(tmp_path.iterdir())
    assert isinstance(s.suggest("t0"), dict)
    assert CACHE_STATS["pretrained"] == before["pretrained"] + 1


# ---------------------------------------------------------------------- the cache
def test_cache_is_hit_on_the_second_study(tmp_path, monkeypatch, nb201_excerpt):
    folder = str(tmp_path)
    monkeypatch.delenv("RAYNAS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", folder)
    space = nb201_excerpt.space
    options = dict(SMALL, pretrain_size=300, pretrain_epochs=1)
    before = dict(CACHE_STATS)
    first = get_searcher("arch2vec-bo", space, metric="test_accuracy", mode="max", seed=0, **options)
    simulate(first, nb201_excerpt, 20)
    path = cache_path(space, first.config.pretrain_options())
    assert path.is_file() and str(path).startswith(f"{folder}/raynas/arch2vec/nasbench201-")
    assert CACHE_STATS["pretrained"] == before["pretrained"] + 1
    # another study in this process shares the loaded embeddings
    again = get_searcher("arch2vec-rl", space, metric="test_accuracy", mode="max", seed=1, **options)
    assert again.embeddings is first.embeddings and CACHE_STATS["memo"] == before["memo"] + 1
    # a new process (here: a cleared memo) reads the file and never pretrains again
    clear_memo()
    monkeypatch.setattr("raynas.searchers.arch2vec._pretrain.pretrain",
                        lambda *a, **k: pytest.fail("pretrained again despite the cache"))
    second = get_searcher("arch2vec-bo", space, metric="test_accuracy", mode="max", seed=5, **options)
    simulate(second, nb201_excerpt, 20)
    assert CACHE_STATS["file"] == before["file"] + 1
    assert np.array_equal(second.embeddings.z, first.embeddings.z)
    # other options are another file
    other = Arch2VecBOConfig(**{**options, "pretrain_seed": 1})
    assert cache_path(space, other.pretrain_options()) != path


def test_a_damaged_cache_file_is_pretrained_again(tmp_path):
    space = get_space("nasbench_macro")
    options = _options(size=200, epochs=1, latent_points=0)
    path = cache_path(space, options, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a state")
    before = CACHE_STATS["pretrained"]
    emb = load_embeddings(space, options, tmp_path, progress=False)
    assert CACHE_STATS["pretrained"] == before + 1 and emb.z.shape == (3**8, 16)
    clear_memo()
    assert np.array_equal(load_embeddings(space, options, tmp_path, progress=False).z, emb.z)


# ---------------------------------------------------------------------- the searchers
def test_bo_rounds_queue_the_top_expected_improvement(cache, nb201_excerpt):
    s = _make("arch2vec-bo", nb201_excerpt.space, cache, candidates=nb201_excerpt.candidates())
    assert isinstance(s, Arch2VecBOSearcher)
    st = simulate(s, nb201_excerpt, 16 + 5 * 3, stop_after=16)
    assert s.rounds == 0  # the 16 initial cells are random
    simulate(s, nb201_excerpt, 16 + 5 * 3, state=st)
    assert s.rounds == 3 and not s.queue
    # a round's picks are the open cells of highest EI under a surrogate fit to the history
    ok = s.evaluated
    picks = s.round(ok)
    assert len(picks) == 5 and len(set(picks)) == 5
    assert not {s.space.key(s.pool_arch(i)) for i in picks} & s.seen


def test_bo_beats_random_on_nasbench201(cache, nb201_excerpt):
    # 400 cells of NAS-Bench-201 CIFAR-10; 60 queries, 5 seeds each.
    best = {}
    for method in ("arch2vec-bo", "random"):
        runs = []
        for seed in range(5):
            kw = {} if method == "random" else SMALL | {"cache_dir": cache}
            s = get_searcher(method, nb201_excerpt.space, metric="test_accuracy", mode="max", seed=seed,
                             candidates=nb201_excerpt.candidates(), **kw)
            st = simulate(s, nb201_excerpt, 60)
            runs.append(max(r["test_accuracy"] for r in st.rows))
        best[method] = float(np.mean(runs))
    assert best["arch2vec-bo"] > best["random"], best


def test_rl_learns_after_each_episode_and_skips_failures(cache, nb201_excerpt):
    s = _make("arch2vec-rl", nb201_excerpt.space, cache, candidates=nb201_excerpt.candidates(), batch=8)
    assert isinstance(s, Arch2VecRLSearcher)
    before = [p.detach().clone() for p in s.policy.parameters()]
    # the first cell, four episodes of eight, and one cell of the fifth (whose proposal feeds
    # the fourth episode's last result)
    simulate(s, nb201_excerpt, 1 + 8 * 4 + 1)
    assert s.updates == 4 and [len(e["keys"]) for e in s.episodes] == [1]
    assert any(not torch.equal(a, b) for a, b in zip(before, s.policy.parameters()))
    # an episode whose cells partly failed is learned from when all its results are in
    state = [p.detach().clone() for p in s.policy.parameters()]
    for i in range(7):
        assert isinstance(s.suggest(f"t{i}"), dict)
    for i in range(7):
        if i % 2:
            s.on_trial_complete(f"t{i}", None, error=True)
        else:
            s.on_trial_complete(f"t{i}", {"test_accuracy": 90.0 + i})
    assert s.updates == 4  # results are fed at the next suggestion
    s.suggest("t7")
    assert s.updates == 5 and sum(v is None for v in s.scores.values()) == 3
    assert any(not torch.equal(a, b) for a, b in zip(state, s.policy.parameters()))


@pytest.mark.parametrize("method", ["arch2vec-bo", "arch2vec-rl"])
def test_save_and_restore_mid_study_reproduces_the_run(method, cache, nb201_excerpt, tmp_path):
    kw = dict(candidates=nb201_excerpt.candidates())
    if method == "arch2vec-rl":
        kw["batch"] = 6
    ref = simulate(_make(method, nb201_excerpt.space, cache, seed=3, **kw), nb201_excerpt, 50, workers=3)
    s = _make(method, nb201_excerpt.space, cache, seed=3, **kw)
    st = simulate(s, nb201_excerpt, 50, workers=3, stop_after=27)
    s.save(str(tmp_path / "s.pt"))
    fresh = _make(method, nb201_excerpt.space, cache, seed=11, **kw)
    fresh.restore(str(tmp_path / "s.pt"))
    import copy

    rest = simulate(fresh, nb201_excerpt, 50, workers=3, state=copy.deepcopy(st))
    assert [r["config"] for r in rest.rows] == [r["config"] for r in ref.rows]


def test_study_of_150_queries_on_the_whole_space_is_fast(graph):
    # Without candidates the pool is the whole space: all 26,206 cells of NAS-Bench-Graph.
    # (The conformance suite's options and cache folder: pretrained once per machine.)
    import time

    options = {k: v for k, v in FAST_OPTIONS["arch2vec-bo"].items() if k.startswith("pretrain_")}
    s = get_searcher("arch2vec-bo", graph.space, metric="val_accuracy", mode="max", **options)
    assert len(s.embeddings.keys) == 26_206  # read before the clock starts: cached embeddings
    start = time.perf_counter()
    st = simulate(s, graph, 150)
    assert len(st.rows) == 150 and len({r["key"] for r in st.rows}) == 150
    assert s.rounds == -(-(150 - 16) // 5)  # one round per 5 proposals after the 16 initial cells
    assert len(s._pool_z) == 26_206
    assert time.perf_counter() - start < 60.0


# ---------------------------------------------------------------------- the surrogate
def test_bayesian_linear_regression_recovers_a_line_and_its_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=200)
    blr = BayesianLinearRegression().fit(np.c_[x, np.ones(200)], y)
    assert np.allclose(blr.mean[:3], [1.0, -2.0, 0.5], atol=0.03)
    assert 0.07 < 1 / np.sqrt(blr.beta) < 0.13
    mean, var = blr.predict(np.c_[x[:5], np.ones(5)])
    assert np.allclose(mean, y[:5], atol=0.4) and (var > 0).all()


def test_dngo_fits_a_nonlinear_function_and_is_uncertain_far_away(one_thread):
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(100, 2))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2
    model = Surrogate("dngo", steps=400).fit(x, y, torch.Generator().manual_seed(0))
    mean, var = model.predict(x)
    assert np.corrcoef(mean, y)[0, 1] > 0.95
    _, far = model.predict(np.array([[20.0, 20.0]]))
    assert far[0] > var.mean()


def test_expected_improvement_matches_its_closed_form():
    ei = expected_improvement(np.array([1.0, 0.0, 2.0]), np.array([1.0, 1.0, 1e-12]), best=1.0)
    assert ei[0] == pytest.approx(1 / np.sqrt(2 * np.pi))  # mu = best: sigma * phi(0)
    assert ei[1] == pytest.approx(0.0833155, abs=1e-6)  # -Phi(-1) + phi(-1)
    assert ei[2] == pytest.approx(1.0)


# ---------------------------------------------------------------------- Table 1
@pytest.mark.slow
def test_reconstruction_accuracy_on_nasbench201_is_at_least_99():
    # the default option set on the whole space (6,466 cells, 10 epochs; about 20 s on one core)
    emb = pretrain(get_space("nasbench201"), PretrainOptions(latent_points=2000), progress=False)
    assert emb.metrics["reconstruction_accuracy"] >= 99.0, emb.metrics
    assert emb.metrics["ops_accuracy"] >= 99.9
    assert emb.metrics["validity"] > 10.0 and emb.metrics["uniqueness"] > 80.0


@pytest.fixture(scope="module")
def nb101_default():
    """The default option set on NAS-Bench-101 (50,000 sampled cells, 10 epochs; about 6 min on
    one core), from the user's cache where ``benchmarks/bench_arch2vec.py`` or an earlier run
    left it."""
    return load_embeddings(get_space("nasbench101"), PretrainOptions(), progress=False)


@pytest.mark.slow
def test_reconstruction_on_nasbench101_learns_ops_and_most_edges(nb101_default):
    m = nb101_default.metrics
    assert m["ops_accuracy"] >= 99.0, m
    assert m["adj_accuracy"] >= 96.0, m
    assert m["validity"] > 10.0 and m["uniqueness"] > 50.0, m


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 13 asks >= 99% on NB101; the adjacency reaches about 97% with "
                   "50,000 cells x 10 epochs (the paper trains on all 423,624 cells)")
def test_reconstruction_accuracy_on_nasbench101_is_at_least_99(nb101_default):
    assert nb101_default.metrics["reconstruction_accuracy"] >= 99.0, nb101_default.metrics


def test_embeddings_loaded_once_reach_another_process_without_its_cache(tmp_path, monkeypatch, nb201_excerpt):
    """The runner loads them once on the driver (``shared_payload``) and ships them through the
    object store; a worker on a node without the cache file (here: a cleared memo and another
    cache folder) puts them in place (``install_payload``) and neither reads nor pretrains."""
    import pickle

    from raynas.runner._study import StudySpec, run_study, shared_payloads
    from raynas.searchers import searcher_class

    options = dict(SMALL, pretrain_size=300, pretrain_epochs=1, cache_dir=str(tmp_path / "driver"))
    payloads = shared_payloads({"arch2vec-bo": options, "evolution": {}}, nb201_excerpt)
    assert set(payloads) == {"arch2vec-bo"}  # evolution shares nothing
    shipped = pickle.loads(pickle.dumps(payloads))  # what crosses the object store: plain data
    clear_memo()
    monkeypatch.setattr("raynas.searchers.arch2vec._pretrain.pretrain",
                        lambda *a, **k: pytest.fail("a worker pretrained its own copy"))
    searcher_class("arch2vec-bo").install_payload(shipped["arch2vec-bo"])
    before = dict(CACHE_STATS)
    worker = {**options, "cache_dir": str(tmp_path / "node2")}
    _, st = run_study(StudySpec("arch2vec-bo", 0, "test_accuracy", "max", 20, options=worker), nb201_excerpt)
    assert len(st.rows) == 20
    assert CACHE_STATS["file"] == before["file"] and CACHE_STATS["memo"] == before["memo"] + 1
    assert not (tmp_path / "node2").exists()
