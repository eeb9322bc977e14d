"""PyTorch networks of the image spaces: shapes, and parameter and FLOPs counts that equal the
published benchmark values (raynas.trainables.networks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import MACRO_EXCERPT, shared_file

from raynas import benchmarks
from raynas._errors import InvalidArchitectureError
from raynas.spaces import get_space
from raynas.trainables.networks import SUPPORTED, build_network, count_flops, count_params

IMAGE_SPACES = ["nasbench201", "nasbench_macro", "nasbench101", "darts"]
# Smaller widths and depths where the paper's network is slow on a CPU; shapes are the same.
SMALL = {"darts": {"channels": 8, "layers": 5}, "nasbench101": {"stem_channels": 16}}


# --- every family: a forward pass on random cells ------------------------------------------
@pytest.mark.parametrize("name", IMAGE_SPACES)
def test_forward_shape_on_random_cells(name):
    space = get_space(name)
    rng = np.random.default_rng(0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # (B, C, H, W)
    for _ in range(3):
        net = build_network(space, space.sample(rng), num_classes=7, **SMALL.get(name, {}))
        net.eval()
        with torch.no_grad():
            out = net(x)
        assert out.shape == (2, 7)
        assert torch.isfinite(out).all()


def test_train_step_runs():
    space = get_space("nasbench201")
    net = build_network(space, ("nor_conv_3x3", "skip_connect", "avg_pool_3x3") * 2)
    x = torch.randn(2, 3, 32, 32)
    loss = net(x).logsumexp(dim=1).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.classifier.parameters())


def test_unsupported_space_names_the_supported_ones():
    with pytest.raises(ValueError, match="GNN space") as err:
        build_network("nasbench_graph", None)
    for name in SUPPORTED:
        assert name in str(err.value)


def test_invalid_arch_is_rejected():
    with pytest.raises(InvalidArchitectureError):
        build_network("nasbench201", ("conv_7x7",) * 6)


def test_count_flops_restores_training_mode():
    net = build_network("nasbench_macro", (1,) * 8)
    net.train()
    count_flops(net)
    assert net.training


# --- NAS-Bench-201 ----------------------------------------------------------------------------
# Published NAS-Bench-201 / NATS-Bench cost extremes (params in M, FLOPs in M, biases included):
# all-`none` and all-`nor_conv_3x3` cells, CIFAR-10 (10 classes) and CIFAR-100 (100 classes).
@pytest.mark.parametrize(
    "op, classes, params, mflops",
    [
        ("none", 10, 0.073306, 7.78305),
        ("nor_conv_3x3", 10, 1.531546, 220.11969),
        ("none", 100, 0.079156, 7.7889),
        ("nor_conv_3x3", 100, 1.537396, 220.12554),
    ],
)
def test_nasbench201_published_costs(op, classes, params, mflops):
    net = build_network("nasbench201", (op,) * 6, num_classes=classes)
    assert count_params(net) == round(params * 1e6)
    assert count_flops(net, bias=True) == round(mflops * 1e6)


def test_nasbench201_cost_is_additive_in_conv_edges():
    # Each conv edge adds the same weights in every cell: 5 cells per stage at C = 16, 32, 64.
    per_conv3 = 5 * sum(9 * c * c + 2 * c for c in (16, 32, 64))
    per_conv1 = 5 * sum(c * c + 2 * c for c in (16, 32, 64))
    space = get_space("nasbench201")
    for arch in [space.sample(np.random.default_rng(seed)) for seed in range(5)]:
        expected = (
            73306 + per_conv3 * arch.count("nor_conv_3x3") + per_conv1 * arch.count("nor_conv_1x1")
        )
        assert count_params(build_network(space, arch)) == expected


# --- NAS-Bench-Macro --------------------------------------------------------------------------
def _check_macro(bench, archs):
    mismatched = []
    for arch in archs:
        net = build_network(bench.space, arch)
        row = bench.query(arch)
        got = (count_params(net), count_flops(net, (3, 32, 32)))
        if got != (row["params"], row["flops"]):
            mismatched.append((bench.space.key(arch), got, (row["params"], row["flops"])))
    assert not mismatched, mismatched[:5]


@pytest.mark.parametrize(
    "stride", [pytest.param(8, id="every-8th"), pytest.param(1, id="all", marks=pytest.mark.slow)]
)
def test_nasbench_macro_costs_on_excerpt(stride, one_thread):
    bench = benchmarks.load("nasbench_macro", path=MACRO_EXCERPT)
    archs = [bench.space.from_string(k) for k in json.loads(MACRO_EXCERPT.read_text())]
    assert len(archs) == 400
    with torch.no_grad():
        _check_macro(bench, archs[::stride])


@pytest.mark.slow
def test_nasbench_macro_costs_on_all_cells(one_thread):
    path = shared_file("nasbench_macro/nas-bench-macro_cifar10.json")
    bench = benchmarks.load("nasbench_macro", path=path)
    archs = list(bench.space.enumerate())
    assert len(archs) == 6561
    with torch.no_grad():
        _check_macro(bench, archs)


# --- NAS-Bench-101 ----------------------------------------------------------------------------
# (matrix, ops, trainable_parameters) copied from ../shared/data/nasbench101/nb101_1k.json
# (official NAS-Bench-101 records 0, 6, 8, 23, 33 and 45): cells with and without an
# input-to-output edge, uneven channel splits (truncation), max pools, 6 and 7 vertices.
C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
NB101_RECORDS = [
    (
        [
            [0, 1, 0, 0, 1, 1, 0],
            [0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        ["input", C3, MP, C3, C3, C1, "output"],
        8555530,
    ),
    (
        [
            [0, 1, 0, 1, 0, 1, 1],
            [0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        ["input", C1, MP, MP, MP, MP, "output"],
        4541322,
    ),
    (
        [
            [0, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0, 1],
            [0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        ["input", C1, C3, MP, C3, MP, "output"],
        2479416,
    ),
    (
        [
            [0, 1, 0, 1, 1, 0],
            [0, 0, 1, 0, 0, 1],
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
        ],
        ["input", C3, C3, MP, C3, "output"],
        3984576,
    ),
    (
        [
            [0, 1, 0, 1, 0, 1],
            [0, 0, 1, 0, 0, 1],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
        ],
        ["input", C3, C3, MP, MP, "output"],
        3541933,
    ),
    (
        [
            [0, 1, 0, 0, 1, 0, 1],
            [0, 0, 1, 0, 0, 0, 1],
            [0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        ["input", C1, MP, MP, MP, C1, "output"],
        1697419,
    ),
]


def _nb101_params(space, matrix, ops) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return count_params(build_network(space, space.from_spec(matrix, ops)))


@pytest.mark.parametrize("matrix, ops, params", NB101_RECORDS)
def test_nasbench101_params_on_known_records(matrix, ops, params):
    assert _nb101_params(get_space("nasbench101"), matrix, ops) == params


def test_nasbench101_forward_on_edge_cases():
    space = get_space("nasbench101")
    x = torch.randn(2, 3, 32, 32)
    cells = [
        space.from_spec([[0, 1], [0, 0]], ["input", "output"]),  # input -> output only
        space.from_spec(NB101_RECORDS[4][0], NB101_RECORDS[4][1]),  # truncation + input add
    ]
    for cell in cells:
        net = build_network(space, cell, stem_channels=16).eval()
        with torch.no_grad():
            assert net(x).shape == (2, 10)


@pytest.mark.slow
def test_nasbench101_params_on_1k_records(one_thread):
    path = shared_file("nasbench101/nb101_1k.json")
    records = json.loads(path.read_text())["records"]
    assert len(records) == 1000
    space = get_space("nasbench101")
    mismatched = [
        (r["hash"], got, r["trainable_parameters"])
        for r in records
        if (got := _nb101_params(space, r["matrix"], r["ops"])) != r["trainable_parameters"]
    ]
    assert not mismatched, mismatched[:5]


# --- DARTS ------------------------------------------------------------------------------------
def test_darts_v2_has_the_published_parameter_count():
    from raynas.spaces._darts import DARTS_V2

    with torch.device("meta"):
        net = build_network("darts", DARTS_V2, auxiliary=True)
    # DARTS's train.py logs "param size = 3.349342MB" (auxiliary head excluded) for DARTS_V2.
    main = sum(p.numel() for name, p in net.named_parameters() if not name.startswith("auxiliary"))
    assert main == 3_349_342
    assert count_params(net) > main


def test_darts_auxiliary_head_and_seeded_drop_path():
    from raynas.spaces._darts import DARTS_V2

    x = torch.randn(2, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)  # same initial weights; drop path uses only the network's seed
        net = build_network("darts", DARTS_V2, channels=8, layers=5, auxiliary=True, seed=3)
        net.drop_path_prob = 0.5
        logits, aux = net.train().forward_with_aux(x)
        assert logits.shape == aux.shape == (2, 10)
        outs.append(logits)
    torch.testing.assert_close(outs[0], outs[1])
    assert net.eval().forward_with_aux(x)[1] is None
