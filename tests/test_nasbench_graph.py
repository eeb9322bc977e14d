"""NAS-Bench-Graph: the space against the nas-bench-graph package, and the embedded tables."""

from __future__ import annotations

import pickle

import nas_bench_graph
import numpy as np
import pytest

from raynas import benchmarks
from raynas._errors import BenchmarkFormatError, InvalidArchitectureError, UnknownNameError
from raynas.benchmarks._nasbench_graph import (
    TIME_FN,
    TIME_MODEL,
    load_nasbench_graph,
    representatives,
)
from raynas.spaces import get_space
from raynas.spaces._nasbench_graph import (
    LINKS,
    OPS,
    PROTEINS_OPS,
    GraphArch,
    NASBenchGraphSpace,
)

DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")


@pytest.fixture(scope="module")
def space() -> NASBenchGraphSpace:
    return NASBenchGraphSpace()


@pytest.fixture(scope="module")
def cora():
    return benchmarks.load("nasbench_graph", dataset="cora")


@pytest.fixture(scope="module")
def proteins():
    return benchmarks.load("nasbench_graph", dataset="proteins")


def test_constants_match_package():
    assert LINKS == tuple(tuple(lk) for lk in nas_bench_graph.link_list)
    assert OPS == tuple(nas_bench_graph.gnn_list)
    assert PROTEINS_OPS == tuple(nas_bench_graph.gnn_list_proteins)


def test_registry_and_cardinality():
    assert get_space("nasbench_graph").cardinality == 9 * 9**4 - 9
    proteins = get_space("nasbench_graph", ops="proteins")
    assert proteins.ops == PROTEINS_OPS and proteins.cardinality == 9 * 5**4 - 9
    assert repr(proteins) == "NASBenchGraphSpace(ops='proteins')"
    with pytest.raises(UnknownNameError, match="default, proteins"):
        NASBenchGraphSpace(ops="cifar")


@pytest.mark.parametrize("op_set", ["default", "proteins"])
def test_keys_equal_package_valid_hash(op_set):
    space = NASBenchGraphSpace(ops=op_set)
    rng = np.random.default_rng(0)
    for _ in range(5000):
        arch = space.sample(rng)
        expected = nas_bench_graph.Arch(list(arch.link), list(arch.ops)).valid_hash()
        assert space.key(arch) == str(expected)
        assert space.key((tuple(arch.link), tuple(arch.ops))) == str(expected)  # plain tuples


@pytest.mark.parametrize("op_set", ["default", "proteins"])
def test_enumerate_covers_space(op_set):
    space = NASBenchGraphSpace(ops=op_set)
    archs = list(space.enumerate())
    assert len(archs) == len(set(archs)) == space.cardinality
    assert all(a.ops != ("skip",) * 4 for a in archs)
    keys = {space.key(a) for a in archs}
    assert keys == set(representatives(op_set))
    assert len(keys) == (26206 if op_set == "default" else 2021)


def test_representatives_are_the_packages_canonical_forms():
    for key, arch in list(representatives().items())[::50]:
        assert nas_bench_graph.Arch(list(arch.link), list(arch.ops)).check_isomorph(), arch
        assert NASBenchGraphSpace().key(arch) == key


def test_round_trips(space):
    rng = np.random.default_rng(1)
    mask = space.token_mask()
    assert mask.shape == (space.seq_length, space.vocab_size) and not mask[:, 0].any()
    for _ in range(3000):
        arch = space.sample(rng)
        assert isinstance(arch, GraphArch) and space.is_valid(arch)
        config = space.to_config(arch)
        assert all(isinstance(v, (int, str)) for v in config.values())
        assert space.from_config({**config, "extra": 1}) == arch
        seq = space.to_sequence(arch)
        assert len(seq) == space.seq_length and all(mask[i, t] for i, t in enumerate(seq))
        assert space.from_sequence(seq) == arch
        assert space.from_string(space.to_string(arch)) == arch
        adj, ops = space.to_graph(arch)
        assert adj.shape == (6, 6) and ops.shape == (6, len(OPS) + 2)
        assert (ops.sum(axis=1) == 1).all() and np.all(np.triu(adj, 1) == adj)
        link = tuple(int(np.flatnonzero(adj[:, v])[0]) for v in range(1, 5))
        assert link == arch.link
        assert tuple(OPS[int(np.argmax(ops[v]))] for v in range(1, 5)) == arch.ops
        assert adj[1:5, 5].sum() >= 1


def test_graph_example(space):
    adj, _ = space.to_graph(space.from_string("link=0,0,1,2;ops=gcn,gat,skip,sage"))
    edges = {(int(s), int(d)) for s, d in zip(*np.nonzero(adj), strict=True)}
    assert edges == {(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)}


def test_proteins_sequence_and_mask():
    space = NASBenchGraphSpace(ops="proteins")
    assert space.vocab_size == 1 + 9 + 5
    arch = space.from_string("link=0,1,2,3;ops=gcn,sage,arma,fc")
    assert space.to_sequence(arch) == [9, 10, 11, 12, 13]
    assert space.from_sequence([9, 10, 11, 12, 13]) == arch
    mask = space.token_mask()
    assert mask[0].tolist() == [False] + [True] * 9 + [False] * 5
    assert mask[1].tolist() == [False] * 10 + [True] * 5


def test_sample_mutate_neighbors_valid(space):
    rng = np.random.default_rng(2)
    for _ in range(300):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert child != arch and space.is_valid(child)
        nbrs = space.neighbors(arch)
        assert len(set(nbrs)) == len(nbrs) and arch not in nbrs
        assert all(space.is_valid(n) for n in nbrs)
    skipish = GraphArch((0, 0, 0, 0), ("skip", "skip", "skip", "gcn"))
    assert len(space.neighbors(skipish)) == 8 + 4 * 8 - 1  # the all-skip neighbour is left out


def test_seeded_sampling_is_reproducible(space):
    a = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


@pytest.mark.parametrize(
    "arch, reason",
    [
        (((0, 0, 0, 2), ("gcn",) * 4), "link patterns"),
        (((0, 0, 0), ("gcn",) * 4), "link patterns"),
        (((0, 0, 0, 0), ("gcn", "gcn", "gcn", "conv")), "unknown op 'conv' at node 3"),
        (((0, 0, 0, 0), ("skip",) * 4), "all four ops are 'skip'"),
        (((0, 0, 0, 0), ("gcn",) * 3), "tuple of 4 op names"),
        ("link=0,0,0,0", "is \\(link, ops\\)"),
        ([[0, 0, 0, 0], ["gcn"] * 4], "is \\(link, ops\\)"),
    ],
)
def test_bad_archs(space, arch, reason):
    with pytest.raises(InvalidArchitectureError, match=reason):
        space.validate(arch)
    with pytest.raises(InvalidArchitectureError, match=reason):
        space.key(arch)


def test_bad_encodings(space):
    with pytest.raises(InvalidArchitectureError, match="not in the proteins op set"):
        NASBenchGraphSpace(ops="proteins").validate(((0, 0, 0, 0), ("gat",) * 4))
    with pytest.raises(InvalidArchitectureError, match="ops must be a tuple"):
        space.key(((0, 0, 0, 0), ["gcn"] * 4))
    with pytest.raises(InvalidArchitectureError, match="link patterns"):
        space.key(((0, 0, 0, [0]), ("gcn",) * 4))
    for text in ("link=0,0,0;ops=gcn", "ops=gcn,gcn,gcn,gcn", "link=a;ops=gcn", "nonsense"):
        with pytest.raises(InvalidArchitectureError):
            space.from_string(text)
    for tokens in ([1, 10, 10, 10], [0, 10, 10, 10, 10], [1, 1, 10, 10, 10], [1, 10, 10, 10, 19]):
        with pytest.raises(InvalidArchitectureError, match="sequence"):
            space.from_sequence(tokens)
    with pytest.raises(InvalidArchitectureError, match="skip"):
        space.from_sequence([1, 18, 18, 18, 18])
    with pytest.raises(InvalidArchitectureError, match="lacks 'op_1'"):
        space.from_config({"link_0": 0, "link_1": 0, "link_2": 0, "link_3": 0, "op_0": "gcn"})


def test_cora_table(cora):
    assert len(cora) == 26206 and cora.name == "nasbench_graph" and cora.dataset == "cora"
    assert cora.metrics == ["val_accuracy", "test_accuracy", "latency", "params"]
    assert cora.optimum("val_accuracy") == pytest.approx(81.9333333, abs=1e-6)
    assert cora.optimum("test_accuracy") == pytest.approx(83.1333333, abs=1e-6)
    raw = nas_bench_graph.light_read("cora")
    arch = cora.space.from_string("link=0,1,2,3;ops=gcn,gcn,gcn,gcn")
    rec = raw[nas_bench_graph.Arch([0, 1, 2, 3], ["gcn"] * 4).valid_hash()]
    res = cora.query(arch)
    assert res["val_accuracy"] == pytest.approx(100 * rec["valid_perf"])
    assert res["test_accuracy"] == pytest.approx(100 * rec["perf"])
    assert res["latency"] == pytest.approx(rec["latency"]) and res["params"] == rec["para"]


def test_every_key_reachable(cora):
    cands = cora.candidates()
    assert len(cands) == len(cora)
    space = cora.space
    for i, arch in enumerate(cands):
        assert space.key(arch) == cora.keys[i]
    assert {space.key(a) for a in cands} == set(cora.keys)


def test_isomorphic_archs_share_a_row(cora):
    a = cora.space.from_string("link=0,0,0,0;ops=gcn,gat,gcn,gcn")
    b = cora.space.from_string("link=0,0,0,0;ops=gcn,gcn,gcn,gat")
    assert cora.space.key(a) == cora.space.key(b) and cora.query(a) == cora.query(b)


def test_proteins_table(proteins):
    assert len(proteins) == 2021 and proteins.space.ops == PROTEINS_OPS
    for arch in proteins.candidates():
        assert set(arch.ops) <= set(PROTEINS_OPS)
        proteins.query(arch)
    rng = np.random.default_rng(3)
    for _ in range(500):
        assert proteins.contains(proteins.space.sample(rng))  # the 5-op space is tabulated fully


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_loads(dataset):
    bench = benchmarks.load("nasbench_graph", dataset=dataset)
    assert len(bench) == (2021 if dataset == "proteins" else 26206)
    assert 0 < bench.optimum("val_accuracy") <= 100
    assert bench.optimum("params") > 0 and bench.optimum("latency") > 0


def test_unknown_dataset_and_path(tmp_path):
    with pytest.raises(UnknownNameError, match="cora") as err:
        benchmarks.load("nasbench_graph", dataset="mnist")
    assert set(DATASETS) <= set(err.value.valid)
    with pytest.raises(UnknownNameError, match="proteins"):
        load_nasbench_graph(None, "mnist")
    file = tmp_path / "cora.bench"
    file.write_bytes(b"x")
    with pytest.raises(BenchmarkFormatError, match="ships with the nas-bench-graph package"):
        benchmarks.load("nasbench_graph", path=file, dataset="cora")
    with pytest.raises(TypeError, match="no options"):
        load_nasbench_graph(None, "cora", fidelity=3)


def test_time_model_and_pickle(cora):
    arch = cora.candidates()[0]
    res = cora.query(arch)
    assert isinstance(TIME_MODEL, str) and TIME_FN is cora.time_fn
    assert cora.eval_time(arch) == pytest.approx(1000 * res["latency"]) and cora.eval_time(arch) > 0
    clone = pickle.loads(pickle.dumps(cora))
    assert clone.query(arch) == res and clone.eval_time(arch) == cora.eval_time(arch)
    space = pickle.loads(pickle.dumps(NASBenchGraphSpace(ops="proteins")))
    assert space.ops == PROTEINS_OPS


def test_arrow_round_trip(proteins):
    clone = type(proteins).from_arrow(proteins.to_arrow(), space=NASBenchGraphSpace(ops="proteins"))
    arch = proteins.candidates()[7]
    assert clone.query(arch) == proteins.query(arch) and len(clone) == 2021


def test_repeated_queries(cora):
    # A sanity check of the cached lookup path (not timed): many repeated queries agree.
    rng = np.random.default_rng(4)
    archs = [cora.space.sample(rng) for _ in range(2000)]
    first = [cora.query(a)["val_accuracy"] for a in archs]
    for _ in range(20):
        assert [cora.query(a)["val_accuracy"] for a in archs] == first
