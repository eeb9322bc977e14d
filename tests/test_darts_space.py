"""The DARTS cell space: encodings, validity, keys and the published genotypes."""

from __future__ import annotations

import math
import pickle
from collections import namedtuple

import numpy as np
import pytest

from raynas._errors import InvalidArchitectureError
from raynas.spaces import get_space
from raynas.spaces._darts import (
    CONCAT,
    DARTS_V1,
    DARTS_V2,
    GRAPH_COLUMNS,
    OPS,
    DartsSpace,
    Genotype,
    cost,
    freeze,
)

# DARTS's own published string (cnn/genotypes.py), lists and all.
DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


@pytest.fixture(scope="module")
def space() -> DartsSpace:
    return DartsSpace()


def test_registry_and_sizes(space):
    assert isinstance(get_space("darts"), DartsSpace)
    assert Genotype._fields == ("normal", "normal_concat", "reduce", "reduce_concat")
    assert space.seq_length == 32 and space.vocab_size == 14
    per_cell = (2 * 1) * (3 * 2) * (4 * 3) * (5 * 4) * 8**8
    assert space.cardinality == per_cell**2
    assert space.cost(DARTS_V2) == cost(DARTS_V2) == {"params": 3_349_342, "flops": 528_359_040}
    with pytest.raises(NotImplementedError):
        space.enumerate()


def test_cardinality_by_brute_force_on_one_node():
    # node i reads i + 2 inputs: ordered pairs of distinct inputs x 8 ops each
    for node in range(4):
        n = node + 2
        count = sum(1 for a in range(n) for b in range(n) if a != b) * len(OPS) ** 2
        assert count == n * (n - 1) * 64
    assert math.prod(n * (n - 1) * 64 for n in range(2, 6)) ** 2 == DartsSpace.cardinality


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2], ids=["v1", "v2"])
def test_published_genotypes_round_trip(space, genotype):
    space.validate(genotype)
    assert hash(genotype) == hash(freeze(genotype))
    assert space.from_string(space.to_string(genotype)) == genotype
    assert space.from_string(repr(genotype)) == genotype
    assert space.from_config(space.to_config(genotype)) == genotype
    assert space.from_sequence(space.to_sequence(genotype)) == genotype
    assert space.key(space.from_string(space.key(genotype))) == space.key(genotype)


def test_parse_darts_v2_string(space):
    arch = space.from_string(DARTS_V2_TEXT)
    assert arch == DARTS_V2 and arch.normal_concat == CONCAT
    assert arch.normal[7] == ("dil_conv_3x3", 2) and arch.reduce[0] == ("max_pool_3x3", 0)
    # DARTS code builds genotypes with lists; freeze() gives the hashable form
    darts_genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    raw = darts_genotype([list(p) for p in DARTS_V2.normal], range(2, 6), list(DARTS_V2.reduce), [2, 3, 4, 5])
    assert freeze(raw) == DARTS_V2
    assert space.from_string(f"genotypes.{DARTS_V2_TEXT}") == DARTS_V2
    multiline = DARTS_V2_TEXT.replace(", reduce=", ",\n    reduce=")
    assert space.from_string(multiline) == DARTS_V2


def test_round_trips(space):
    rng = np.random.default_rng(0)
    mask = space.token_mask()
    assert not mask[:, 0].any()
    for _ in range(3000):
        arch = space.sample(rng)
        assert isinstance(arch, Genotype) and space.is_valid(arch)
        config = space.to_config(arch)
        assert len(config) == 32 and all(isinstance(v, (int, str)) for v in config.values())
        assert space.from_config({**config, "lr": 0.1}) == arch
        seq = space.to_sequence(arch)
        assert len(seq) == 32 and all(mask[p, t] for p, t in enumerate(seq))
        assert space.from_sequence(seq) == arch
        text = space.to_string(arch)
        assert space.from_string(text) == arch and text == repr(arch)
        adj, ops = space.to_graph(arch)
        assert adj.shape == (22, 22) and ops.shape == (22, len(GRAPH_COLUMNS))
        assert (ops.sum(axis=1) == 1).all() and np.all(np.triu(adj, 1) == adj)
        assert adj[:11, 11:].sum() == 0 and adj[11:, :11].sum() == 0
        for c in range(2):
            sub_ops = ops[11 * c : 11 * c + 11]
            assert [OPS[int(np.argmax(sub_ops[2 + e]))] for e in range(8)] == [p[0] for p in arch[2 * c]]


def test_cell_graph_of_darts_v2(space):
    adj, ops = space.cell_graph(DARTS_V2, "normal")
    # edge 7 is ('dil_conv_3x3', 2): it reads node 0, i.e. op vertices 2 and 3
    assert adj[:, 9].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert adj[2:10, 10].tolist() == [1] * 8 and adj[0, 2] == 1 and adj[1, 3] == 1
    assert GRAPH_COLUMNS[int(np.argmax(ops[10]))] == "normal_output"
    _, ops_r = space.cell_graph(DARTS_V2, "reduce")
    assert GRAPH_COLUMNS[int(np.argmax(ops_r[10]))] == "reduce_output"
    with pytest.raises(ValueError, match="cell must be"):
        space.cell_graph(DARTS_V2, "other")


def test_key_is_canonical_within_nodes(space):
    rng = np.random.default_rng(1)
    for _ in range(500):
        arch = space.sample(rng)
        swapped = arch._replace(
            normal=tuple(arch.normal[i ^ 1] for i in range(8)),
            reduce=tuple(arch.reduce[i ^ 1] for i in range(8)),
        )
        assert space.key(swapped) == space.key(arch)
        key_arch = space.from_string(space.key(arch))
        assert space.key(key_arch) == space.key(arch)
        for node in range(4):
            assert list(key_arch.normal[2 * node : 2 * node + 2]) == sorted(arch.normal[2 * node : 2 * node + 2])


def test_sample_mutate_neighbors(space):
    rng = np.random.default_rng(2)
    for _ in range(200):
        arch = space.sample(rng)
        nbrs = space.neighbors(arch)
        assert len(nbrs) == 2 * sum(2 * (7 + node) for node in range(4)) == 136
        keys = {space.key(n) for n in nbrs}
        assert len(keys) == len(nbrs) and space.key(arch) not in keys
        child = space.mutate(arch, rng)
        assert space.is_valid(child) and child in nbrs
        diff = sum(a != b for a, b in zip(arch.normal + arch.reduce, child.normal + child.reduce, strict=True))
        assert diff == 1
    seqs = [space.to_sequence(space.sample(np.random.default_rng(7))) for _ in range(2)]
    assert seqs[0] == seqs[1]


def test_sample_is_roughly_uniform(space):
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(4000)]
    ops = np.bincount([OPS.index(p[0]) for a in archs for p in a.normal], minlength=8)
    assert ops.min() > 0.8 * ops.mean()
    last_inputs = np.bincount([a.normal[6][1] for a in archs], minlength=5)
    assert last_inputs.min() > 0.8 * last_inputs.mean()
    assert any(p[0] == "none" for a in archs for p in a.normal)  # `none` is a legal op here


def _with(arch: Genotype, cell: str, edge: int, pair) -> Genotype:
    pairs = list(getattr(arch, cell))
    pairs[edge] = pair
    return arch._replace(**{cell: tuple(pairs)})


@pytest.mark.parametrize(
    "arch, reason",
    [
        (_with(DARTS_V2, "normal", 7, ("conv_7x7", 2)), "unknown op 'conv_7x7'"),
        (_with(DARTS_V2, "normal", 0, ("sep_conv_3x3", 2)), "normal node 0: input 2 does not exist"),
        (_with(DARTS_V2, "reduce", 6, ("skip_connect", 5)), "reduce node 3: input 5 does not exist"),
        (_with(DARTS_V2, "normal", 1, ("sep_conv_3x3", 0)), "both edges read input 0"),
        (_with(DARTS_V2, "normal", 1, ("sep_conv_3x3", True)), "input True does not exist"),
        (_with(DARTS_V2, "normal", 1, ["sep_conv_3x3", 1]), "must be an \\(op, input\\) tuple"),
        (DARTS_V2._replace(normal=DARTS_V2.normal[:6]), "tuple of 8 \\(op, input\\) pairs"),
        (DARTS_V2._replace(normal=list(DARTS_V2.normal)), "lists are mutable"),
        (DARTS_V2._replace(reduce_concat=range(2, 5)), "reduce_concat must be range\\(2, 6\\)"),
        (DARTS_V2._replace(normal_concat=[2, 3, 4, 5]), "normal_concat must be range"),
        ((DARTS_V2.normal, DARTS_V2.reduce), "a DARTS architecture is a Genotype"),
        ("DARTS_V2", "a DARTS architecture is a Genotype"),
    ],
)
def test_bad_archs(space, arch, reason):
    with pytest.raises(InvalidArchitectureError, match=reason):
        space.validate(arch)
    with pytest.raises(InvalidArchitectureError):
        space.to_sequence(arch)
    if arch == DARTS_V2:  # True == 1: Python equates it with DARTS_V2, whose key may be cached
        return
    with pytest.raises(InvalidArchitectureError, match=reason):
        space.key(arch)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Genotype(",
        "print('hi')",
        "__import__('os').system('true')",
        "Genotype(normal=[('sep_conv_3x3', 0)] * 8, normal_concat=range(2, 6), reduce=[], reduce_concat=range(2, 6))",
        DARTS_V2_TEXT.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=list(range(2, 6))"),
        DARTS_V2_TEXT.replace(", reduce_concat=[2, 3, 4, 5]", ""),
        DARTS_V2_TEXT.replace("reduce_concat=", "normal_concat="),
        DARTS_V2_TEXT.replace("'dil_conv_3x3', 2", "'dil_conv_3x3', 7"),
        DARTS_V2_TEXT.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[2, 3, 4]"),
        DARTS_V2_TEXT.replace("Genotype(", "Phenotype("),
        DARTS_V2_TEXT.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(10**12)"),
        DARTS_V2_TEXT.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(1000000000000)"),
    ],
)
def test_bad_strings(space, text):
    with pytest.raises(InvalidArchitectureError):
        space.from_string(text)


def test_bad_sequences_and_configs(space):
    good = space.to_sequence(DARTS_V2)
    for bad in (good[:-1], [0] + good[1:], good[:-1] + [14], [6] + good[1:], [3] + good[1:]):
        with pytest.raises(InvalidArchitectureError, match="sequence"):
            space.from_sequence(bad)
    same_inputs = good[:2] + [1] + good[3:]  # node 0 reads input 0 twice
    with pytest.raises(InvalidArchitectureError, match="must differ"):
        space.from_sequence(same_inputs)
    config = space.to_config(DARTS_V2)
    del config["reduce_n3_op1"]
    with pytest.raises(InvalidArchitectureError, match="lacks 'reduce_n3_op1'"):
        space.from_config(config)
    with pytest.raises(InvalidArchitectureError, match="integers"):
        space.from_config({**space.to_config(DARTS_V2), "normal_n0_in0": "c_k-2"})
    with pytest.raises(InvalidArchitectureError, match="not a DARTS genotype"):
        freeze(42)


def test_pickle(space):
    clone = pickle.loads(pickle.dumps(space))
    assert clone.key(DARTS_V1) == space.key(DARTS_V1)
    assert pickle.loads(pickle.dumps(DARTS_V2)) == DARTS_V2
