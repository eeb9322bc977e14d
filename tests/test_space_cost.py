"""``Space.cost``: params and FLOPs of the image spaces' networks at the standard setting.

Convention: trainable parameters, and multiply-adds of the conv and linear layers for one
3x32x32 image with biases excluded (NAS-Bench-Macro's), 10 classes, the paper's widths. The
NAS-Bench-201 and NAS-Bench-Macro costs are sums of per-edge / per-layer terms measured once;
these tests compare them with full network builds on a sample and with the published numbers
(every Macro cell where the shared table is present). A one-off exhaustive run (2026-11-25)
matched full builds on all 15,625 NB201 and all 6,561 Macro cells; it took about 35 minutes,
too long for CI.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import DATA, MACRO_EXCERPT, shared_file

from raynas._errors import InvalidArchitectureError
from raynas.spaces import _cost, get_space
from raynas.trainables.networks import build_network, count_flops, count_params

IMAGE_SPACES = ["nasbench201", "nasbench_macro", "nasbench101", "darts"]


def _full(space, arch) -> dict[str, int]:
    """The reference: build the whole network and count it (no decomposition, no cache)."""
    net = build_network(space, arch, num_classes=10)
    return {"params": count_params(net), "flops": count_flops(net, (3, 32, 32), bias=False)}


def _mismatches(space, archs) -> list:
    out = []
    for arch in archs:
        got, want = space.cost(arch), _full(space, arch)
        if got != want:
            out.append((space.key(arch), got, want))
    return out


# --- every space ----------------------------------------------------------------------------
def test_importing_the_spaces_does_not_import_torch():
    code = (
        "import sys\n"
        "from raynas.spaces import get_space\n"
        "import raynas.spaces._cost\n"
        f"for name in {IMAGE_SPACES!r}: get_space(name)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", IMAGE_SPACES)
def test_cost_is_ints_and_leaves_rng_and_threads_alone(name):
    space = get_space(name)
    arch = space.sample(np.random.default_rng(5))
    _cost._measured.cache_clear()  # a cold call builds a network
    threads = torch.get_num_threads()
    state = torch.get_rng_state()
    cost = space.cost(arch)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    assert set(cost) == {"params", "flops"}
    assert all(type(v) is int and v > 0 for v in cost.values())
    assert cost == _full(space, arch)
    cost["params"] = 0  # the caller's copy: the cached value is not changed
    assert space.cost(arch)["params"] > 0


@pytest.mark.parametrize(
    "name, bad",
    [
        ("nasbench201", ("conv_7x7",) * 6),
        ("nasbench201", ("none",) * 5),
        ("nasbench_macro", (3,) * 8),
        ("nasbench_macro", (0,) * 7),
        ("nasbench101", "not a cell"),
        ("darts", ("not", "a", "genotype")),
    ],
)
def test_invalid_architectures_are_rejected(name, bad):
    with pytest.raises(InvalidArchitectureError):
        get_space(name).cost(bad)


def test_graph_space_has_no_cost_model():
    space = get_space("nasbench_graph")
    assert space.cost(space.sample(np.random.default_rng(0))) is None


# --- NAS-Bench-201 ----------------------------------------------------------------------------
# Published NAS-Bench-201 / NATS-Bench CIFAR-10 extremes: params in M, FLOPs in MFLOPs. The
# benchmark's FLOPs also count the classifier's bias additions (10 of them); ours do not.
@pytest.mark.parametrize(
    "op, mparams, mflops", [("none", 0.073306, 7.78305), ("nor_conv_3x3", 1.531546, 220.11969)]
)
def test_nasbench201_published_extremes(op, mparams, mflops):
    cost = get_space("nasbench201").cost((op,) * 6)
    assert cost == {"params": round(mparams * 1e6), "flops": round(mflops * 1e6) - 10}


def test_nasbench201_known_cells():
    space = get_space("nasbench201")
    # One nor_conv_3x3 edge adds, over the 5 cells of each stage (C = 16, 32, 64 channels at
    # 32, 16, 8 pixels), 9 C^2 weights plus a BN's 2 C, and 9 C^2 multiply-adds per pixel.
    stages = [(16, 32), (32, 16), (64, 8)]
    edge_params = sum(5 * (9 * c * c + 2 * c) for c, _ in stages)
    edge_flops = sum(5 * 9 * c * c * px * px for c, px in stages)
    best = space.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )  # five nor_conv_3x3 edges
    cost = space.cost(best)
    assert cost == {"params": 73306 + 5 * edge_params, "flops": 7783040 + 5 * edge_flops}
    assert cost == {"params": 1288506, "flops": 184730240}


@pytest.mark.parametrize("seed", range(3))
def test_nasbench201_decomposition_equals_full_builds_on_a_sample(seed, one_thread):
    space = get_space("nasbench201")
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(8)]
    assert not _mismatches(space, archs)


def test_nasbench201_excerpt_has_no_cost_columns():
    # The committed excerpt (and the NATS-Bench CSV it is cut from) publishes accuracies only,
    # so the published extremes above are the NAS-Bench-201 numbers we can check.
    header = (DATA / "nb201_excerpt.csv").read_text().splitlines()[0].lower()
    assert "param" not in header and "flop" not in header


# --- NAS-Bench-Macro --------------------------------------------------------------------------
def test_nasbench_macro_equals_the_published_excerpt():
    # tests/data/macro_excerpt.json: the benchmark's raw counts (params, FLOPs as multiply-adds).
    space = get_space("nasbench_macro")
    table = json.loads(MACRO_EXCERPT.read_text())
    assert len(table) == 400
    got = {k: space.cost(space.from_string(k)) for k in table}
    assert got == {k: {"params": r["params"], "flops": r["flops"]} for k, r in table.items()}
    assert got["11220100"] == {"params": 838986, "flops": 46451200}


def test_nasbench_macro_equals_the_published_table_on_all_cells():
    table = json.loads(shared_file("nasbench_macro/nas-bench-macro_cifar10.json").read_text())
    space = get_space("nasbench_macro")
    assert len(table) == 6561
    bad = [
        k for k, r in table.items()
        if space.cost(space.from_string(k)) != {"params": r["params"], "flops": r["flops"]}
    ]  # fmt: skip
    assert not bad, bad[:5]


def test_nasbench_macro_accepts_numpy_choices():
    space = get_space("nasbench_macro")
    arch = (0, 2, 0, 1, 2, 1, 0, 0)
    assert space.cost(tuple(np.array(arch))) == space.cost(arch)


def test_nasbench_macro_decomposition_equals_full_builds_on_a_sample(one_thread):
    space = get_space("nasbench_macro")
    rng = np.random.default_rng(0)
    archs = [(0,) * 8, (1,) * 8, (2,) * 8] + [space.sample(rng) for _ in range(12)]
    assert not _mismatches(space, archs)


# --- NAS-Bench-101 ----------------------------------------------------------------------------
def test_nasbench101_params_equal_the_published_records():
    records = json.loads((DATA / "nb101_excerpt.json").read_text())["records"]
    assert len(records) == 20
    space = get_space("nasbench101")
    got = [space.cost(space.from_spec(r["matrix"], r["ops"]))["params"] for r in records]
    assert got == [r["trainable_parameters"] for r in records]


def test_nasbench101_input_to_output_cell_by_hand():
    # Every cell is one 1x1 conv-BN-ReLU projection; stem 3x3 conv 3 -> 128; stacks at
    # 128 / 256 / 512 channels and 32 / 16 / 8 pixels; a 512 -> 10 classifier.
    convs = [(3 * 9, 128, 32)] + [
        (c_in, c_out, px)
        for c_in, c_out, px in [(128, 128, 32)] * 3 + [(128, 256, 16)] + [(256, 256, 16)] * 2
        + [(256, 512, 8)] + [(512, 512, 8)] * 2
    ]  # fmt: skip
    params = sum(k * c + 2 * c for k, c, _ in convs) + 512 * 10 + 10
    flops = sum(k * c * px * px for k, c, px in convs) + 512 * 10
    space = get_space("nasbench101")
    cell = space.from_spec([[0, 1], [0, 0]], ["input", "output"])
    assert space.cost(cell) == {"params": params, "flops": flops}
    assert (params, flops) == (882570, 137761792)


def test_nasbench101_cost_is_cached_on_the_pruned_cell():
    space = get_space("nasbench101")
    pruned = space.from_spec(
        [[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]
    )
    # The same cell with a dangling max-pool vertex, as the official unpruned specs have.
    dangling = type(pruned)(
        ((0, 1, 1, 1), (0, 0, 0, 1), (0, 0, 0, 0), (0, 0, 0, 0)),
        ("input", "conv3x3-bn-relu", "maxpool3x3", "output"),
    )
    assert space.prune(dangling) == pruned
    first = space.cost(pruned)
    hits = _cost._measured.cache_info().hits
    assert space.cost(dangling) == first
    assert _cost._measured.cache_info().hits == hits + 1


# --- DARTS ------------------------------------------------------------------------------------
def test_darts_v2_cost():
    from raynas.spaces._darts import DARTS_V2, cost

    space = get_space("darts")
    # 3,349,342: the "param size = 3.349342MB" DARTS's train.py logs for DARTS_V2 (no aux head).
    assert space.cost(DARTS_V2) == cost(DARTS_V2) == {"params": 3349342, "flops": 528359040}


def test_darts_cost_ignores_the_order_of_a_nodes_edges():
    space = get_space("darts")
    arch = space.sample(np.random.default_rng(3))
    normal = list(arch.normal)
    normal[0], normal[1] = normal[1], normal[0]
    swapped = arch._replace(normal=tuple(normal))
    assert space.key(swapped) == space.key(arch)
    assert space.cost(swapped) == space.cost(arch)


def test_darts_unhashable_genotype_is_rejected():
    from raynas.spaces._darts import DARTS_V2

    with pytest.raises(InvalidArchitectureError):
        get_space("darts").cost(DARTS_V2._replace(normal=list(DARTS_V2.normal)))
