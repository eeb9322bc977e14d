"""Disentanglement scores of `raynas explain` on synthetic codes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from raynas.searchers.dnas._disentangle import (
    dci,
    disentanglement,
    mig,
    modularity,
    mutual_info_matrix,
    random_rotation,
    score_codes,
)
from raynas.spaces import get_space

N, K, V = 2000, 6, 5  # NB201-like: 5 ops on each of 6 edges


@pytest.fixture(scope="module")
def synthetic():
    """6 independent 5-valued factors; aligned, rotated and pure-noise codes of 8 dimensions."""
    rng = np.random.default_rng(0)
    f = rng.integers(0, V, size=(N, K))
    factors = {f"op@{k}": f[:, k] for k in range(K)}
    aligned = np.concatenate([f + 0.1 * rng.standard_normal((N, K)), rng.standard_normal((N, 2))], axis=1)
    rotated = aligned @ random_rotation(aligned.shape[1], np.random.default_rng(1))
    noise = rng.standard_normal((N, K + 2))
    return f, factors, {
        "aligned": score_codes(aligned, factors, seed=0),
        "rotated": score_codes(rotated, factors, seed=0),
        "noise": score_codes(noise, factors, seed=0),
    }


def test_random_rotation_is_orthogonal_and_seeded():
    q = random_rotation(7, np.random.default_rng(3))
    assert np.allclose(q @ q.T, np.eye(7), atol=1e-10)
    assert np.array_equal(q, random_rotation(7, np.random.default_rng(3)))
    assert not np.allclose(q, random_rotation(7, np.random.default_rng(4)))


def test_aligned_code_scores_near_one(synthetic):
    _, _, s = synthetic
    a = s["aligned"]
    assert a["mig"] >= 0.85
    assert a["dci_disentanglement"] >= 0.85 and a["dci_completeness"] >= 0.85
    assert a["dci_informativeness"] >= 0.97
    # each factor's top dimension is its own one
    per = a["mig_detail"]["per_factor"]
    assert [p["dims"][0] for p in per.values()] == list(range(K))
    assert [p["top_dim"] for p in a["dci"]["per_factor"].values()] == list(range(K))


def test_rotated_code_keeps_information_but_loses_alignment(synthetic):
    _, _, s = synthetic
    a, r = s["aligned"], s["rotated"]
    assert r["mig"] < 0.3 and r["mig"] < a["mig"] - 0.5
    assert r["dci_disentanglement"] < 0.35 and r["dci_disentanglement"] < a["dci_disentanglement"] - 0.5
    assert r["dci_completeness"] < 0.35
    assert r["dci_informativeness"] >= 0.97  # a linear probe still reads every factor


def test_noise_code_scores_near_zero_and_informativeness_near_chance(synthetic):
    _, _, s = synthetic
    n = s["noise"]
    assert n["mig"] < 0.02
    assert n["dci_disentanglement"] < 0.1 and n["dci_completeness"] < 0.1
    assert n["chance"] == pytest.approx(1 / V, abs=0.03)
    assert abs(n["dci_informativeness"] - n["chance"]) < 0.04


def test_one_hot_factor_spread_over_dimensions_gets_no_mig_but_dci_reads_it(synthetic):
    f, factors, _ = synthetic
    rng = np.random.default_rng(2)
    onehot = np.eye(V)[f[:, 0]] + 0.05 * rng.standard_normal((N, V))  # factor 0 over 5 dims
    rest = f[:, 1:] + 0.1 * rng.standard_normal((N, K - 1))
    s = score_codes(np.concatenate([onehot, rest], axis=1), factors, seed=0)
    per = s["mig_detail"]["per_factor"]
    assert per["op@0"]["gap"] < 0.05  # its 5 dims each know as much: no gap
    assert min(p["gap"] for n, p in per.items() if n != "op@0") > 0.85
    d = s["dci"]["per_factor"]["op@0"]
    assert d["accuracy"] >= 0.97  # ... but a probe reads it
    assert d["completeness"] < 0.5 < min(p["completeness"] for n, p in s["dci"]["per_factor"].items() if n != "op@0")


def test_mig_and_dci_are_deterministic_and_bounded():
    rng = np.random.default_rng(5)
    f = rng.integers(0, 3, size=(300, 2))
    factors = {"a": f[:, 0], "b": f[:, 1]}
    z = np.concatenate([f + 0.2 * rng.standard_normal((300, 2)), rng.standard_normal((300, 1))], axis=1)
    assert dci(z, factors, seed=1) == dci(z, factors, seed=1)
    m = mig(z, factors)
    assert 0.0 <= m["mig"] <= 1.0 and m["mi_matrix"].shape == (3, 2)
    mi = mutual_info_matrix(z, factors)
    assert np.all(mi >= 0) and mi[0, 0] > 0.5 and mi[2, 0] < 0.05
    assert modularity(np.array([[1.0, 0.0], [0.0, 2.0]])) == pytest.approx(1.0)
    assert modularity(np.array([[1.0, 1.0]])) == pytest.approx(0.0)


def test_disentanglement_on_nasbench201_cells_with_known_codes():
    """Through the public function with real cells: codes built from each edge's op."""
    space = get_space("nasbench201")
    archs = [space.sample(np.random.default_rng(i)) for i in range(1500)]
    seqs = np.array([space.to_sequence(a) for a in archs], dtype=np.float64)  # (N, 6) op tokens
    rng = np.random.default_rng(0)
    aligned = np.concatenate([seqs + 0.1 * rng.standard_normal(seqs.shape), rng.standard_normal((len(archs), 2))], 1)
    out = disentanglement(space, aligned, archs, seed=0, baselines={"noise": rng.standard_normal(aligned.shape)})
    assert out["factors"] == [f"op@{i}" for i in range(6)]
    assert set(out["codes"]) == {"trained", "rotated", "noise"}
    assert out["mig"] == out["codes"]["trained"]["mig"] >= 0.85
    assert out["codes"]["trained"]["dci_disentanglement"] >= 0.85
    assert out["codes"]["rotated"]["mig"] < 0.3 and out["codes"]["rotated"]["dci_disentanglement"] < 0.35
    assert out["codes"]["noise"]["mig"] < 0.02
    # derived attributes are reported per attribute but not in the headline
    kinds = {n: a["kind"] for n, a in out["attributes"].items()}
    assert kinds["edges"] == kinds["depth"] == "derived" and kinds["op@0"] == "factor"
    # MIG over factors alone: the mean of the factors' gaps, not of the derived attributes'
    gaps = [a["gap"] for a in out["attributes"].values() if a["kind"] == "factor"]
    assert out["mig"] == pytest.approx(np.mean(gaps))
    assert out["attributes"]["edges"]["gap"] < 0.5  # no single dimension holds the edge count
