"""Conformance of every search space: sampling, round trips, keys, errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from raynas import InvalidArchitectureError, UnknownNameError
from raynas.spaces import get_space, space_names

N_RANDOM = 2000


@pytest.fixture(params=space_names())
def space(request):
    return get_space(request.param)


def test_unknown_space_lists_valid_names():
    with pytest.raises(UnknownNameError, match="nasbench201"):
        get_space("nasbench999")


def test_samples_are_valid_and_round_trip(space):
    rng = np.random.default_rng(0)
    mask = space.token_mask()
    assert mask.shape == (space.seq_length, space.vocab_size)
    for _ in range(N_RANDOM):
        arch = space.sample(rng)
        space.validate(arch)
        key = space.key(arch)
        assert space.key(space.from_config(space.to_config(arch))) == key
        seq = space.to_sequence(arch)
        assert len(seq) == space.seq_length
        assert all(mask[i, t] for i, t in enumerate(seq) if t != 0)
        assert space.key(space.from_sequence(seq)) == key
        assert space.key(space.from_string(space.to_string(arch))) == key
        adj, ops = space.to_graph(arch)
        assert adj.shape[0] == adj.shape[1] == ops.shape[0]
        assert set(np.unique(adj)) <= {0, 1} and set(np.unique(ops)) <= {0, 1}


def test_configs_are_flat_json_scalars(space):
    arch = space.sample(np.random.default_rng(1))
    cfg = space.to_config(arch)
    assert all(isinstance(v, (int, float, str, bool)) for v in cfg.values())


def test_mutate_and_neighbors_stay_valid_and_differ(space):
    rng = np.random.default_rng(2)
    for _ in range(50):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        space.validate(child)
        assert child != arch
        neigh = space.neighbors(arch)
        assert neigh and all(space.is_valid(n) for n in neigh)
        assert arch not in neigh


def test_same_seed_same_samples(space):
    a = [space.key(space.sample(np.random.default_rng(7))) for _ in range(3)]
    b = [space.key(space.sample(np.random.default_rng(7))) for _ in range(3)]
    assert a == b


def test_from_string_rejects_garbage(space):
    with pytest.raises(InvalidArchitectureError):
        space.from_string("definitely not an architecture")


@pytest.mark.parametrize("name,size", [("nasbench201", 15625), ("nasbench_macro", 6561)])
def test_enumeration_sizes(name, size):
    space = get_space(name)
    archs = list(space.enumerate())
    assert len(archs) == size == space.cardinality
    assert len(set(archs)) == size


def test_nb201_keys_partition_like_unique_string(nb201_csv):
    space = get_space("nasbench201")
    groups: dict[str, set[str]] = {}
    with open(nb201_csv) as fh:
        for row in csv.DictReader(fh):
            arch = space.from_string(row["ArchitectureString"])
            assert space.to_string(arch) == row["ArchitectureString"]
            groups.setdefault(space.key(arch), set()).add(row["UniqueString"])
    assert len(groups) == 6466
    assert all(len(v) == 1 for v in groups.values())


def test_nb201_isomorphic_cells_share_a_key():
    space = get_space("nasbench201")
    # A none edge into node 1 makes edge 1->2's op irrelevant... as long as it stays non-skip:
    a = space.from_string("|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    b = space.from_string("|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    c = space.from_string("|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    assert space.key(a) == space.key(b) != space.key(c)


def test_nb201_sequence_is_op_indices():
    space = get_space("nasbench201")
    arch = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    assert space.to_sequence(arch) == [4, 4, 5, 2, 4, 2]


@pytest.mark.parametrize(
    "name,bad,match",
    [
        ("nasbench201", ("none",) * 5, "tuple of 6"),
        ("nasbench201", ("none",) * 5 + ("conv9x9",), "unknown op 'conv9x9'"),
        ("nasbench_macro", (0, 1, 2), "tuple of 8"),
        ("nasbench_macro", (0, 1, 2, 3, 0, 0, 0, 0), "layer 3"),
    ],
)
def test_invalid_architectures_say_why(name, bad, match):
    space = get_space(name)
    with pytest.raises(InvalidArchitectureError, match=match):
        space.validate(bad)
    assert not space.is_valid(bad)


def test_macro_string_is_the_benchmark_key():
    space = get_space("nasbench_macro")
    assert space.from_string("02012100") == (0, 2, 0, 1, 2, 1, 0, 0)
    assert space.key((0, 2, 0, 1, 2, 1, 0, 0)) == "02012100"
    with pytest.raises(InvalidArchitectureError, match="8 digits"):
        space.from_string("0201210")
