"""The disentanglement scores of :func:`raynas.searchers.dnas.explain`, as plain maths.

A cell's **independent factors** are the tokens at its sequence positions (``op@i`` for each
position of ``space.to_sequence`` whose token varies over the cells): the generative factors a
code can hold one dimension each for. **Derived attributes** (edge count and depth of
``space.to_graph``, binned FLOPs) are functions of several factors at once, so no single
dimension can capture them; they are reported per attribute and never enter the headline.

Scores of a code ``(N, S)`` against ``K`` factors:

* **MIG** (Chen, Li, Grosse & Duvenaud, 2018, "Isolating sources of disentanglement in
  VAEs", Section 4.1, Eq. 7): ``1/K sum_k (I(z_j(k); v_k) - max_{j != j(k)} I(z_j; v_k)) /
  H(v_k)`` with ``j(k) = argmax_j I(z_j; v_k)``, the mutual information of each discretised
  dimension with each factor (the histogram estimate of Locatello et al., 2019). Dimensions
  are cut into equal-frequency bins, so the estimate does not change under monotone
  reparametrisations of a dimension and outliers do not empty the bins. This is the headline.
* **DCI** (Eastwood & Williams, 2018, "A framework for the quantitative evaluation of
  disentangled representations", Section 2): see :func:`dci`.
* **Modularity** (Ridgeway & Mozer, 2018, "Learning deep disentangled embeddings with the
  F-statistic loss", Section 3): see :func:`modularity`.

Each is meaningful only next to baselines scored the same way: :func:`disentanglement` always
adds the same code times a random orthogonal matrix (:func:`random_rotation`), which keeps all
its information but none of its axis alignment. Every random choice comes from an explicit
seed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from raynas.spaces import Arch, Space

#: Ops that pass data through unchanged (or drop it): not counted in depth.
_PASS_OPS = frozenset({"none", "skip_connect", "skip", "Identity", "identity"})
_BINS = 10
#: Summary keys of :func:`score_codes` (one row of the report's table).
SUMMARY_KEYS = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "modularity")


def attributes(space: Space, archs: list[Arch]) -> dict[str, np.ndarray]:
    """Discrete attributes of each cell: ``op@i`` per sequence position, ``edges``, ``depth``.

    ``edges`` counts graph edges between vertices whose op is not ``none``; ``depth`` is the
    number of vertices with a computing op (not ``none``/skip/identity, not input/output) on
    the longest input-to-output path of ``space.to_graph``.
    """
    seqs = np.array([space.to_sequence(a) for a in archs])  # (N, T)
    out = {f"op@{i}": seqs[:, i] for i in range(seqs.shape[1])}
    ops = tuple(getattr(space, "ops", ()))
    try:
        graphs = [space.to_graph(a) for a in archs]
    except NotImplementedError:
        return out
    edges, depth = [], []
    for adj, onehot in graphs:
        names = [ops[j] if j < len(ops) else "io" for j in onehot.argmax(axis=1)]
        alive = np.array([n != "none" for n in names])
        a = adj.astype(bool) & alive[:, None] & alive[None, :]
        edges.append(int(a.sum()))
        weight = np.array([0 if n in _PASS_OPS or n == "io" else 1 for n in names])
        depth.append(_longest_path(a, weight))
    out["edges"] = np.array(edges)
    out["depth"] = np.array(depth)
    return out


def is_factor(name: str) -> bool:
    """Whether an attribute of :func:`attributes` is an independent factor (a position's token)."""
    return name.startswith("op@")


def _longest_path(adj: np.ndarray, weight: np.ndarray) -> int:
    """Heaviest path weight through a DAG whose vertices are topologically numbered (0 = input)."""
    n = len(adj)
    best = np.full(n, -1, dtype=np.int64)
    best[0] = weight[0]
    for v in range(1, n):
        preds = np.flatnonzero(adj[:, v])
        reach = [best[u] for u in preds if best[u] >= 0]
        if reach:
            best[v] = max(reach) + weight[v]
    return int(max(best[-1], 0))


# ---------------------------------------------------------------------- mutual information
def discretise(x: np.ndarray, bins: int = _BINS) -> np.ndarray:
    """Equal-frequency bin index (``0..bins-1``) of each value; ties share a bin."""
    x = np.asarray(x, dtype=np.float64)
    if x.max() - x.min() < 1e-12:
        return np.zeros(len(x), dtype=np.int64)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, x, side="right")


def _entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_info_matrix(codes: np.ndarray, factors: dict[str, np.ndarray], bins: int = _BINS) -> np.ndarray:
    """``(S, K)`` mutual information (nats) of each discretised dimension with each factor."""
    z = np.stack([discretise(codes[:, d], bins) for d in range(codes.shape[1])], axis=1)
    mi = np.zeros((codes.shape[1], len(factors)))
    for k, values in enumerate(factors.values()):
        _, v = np.unique(values, return_inverse=True)
        nv = int(v.max()) + 1
        for d in range(z.shape[1]):
            joint = np.bincount(z[:, d] * nv + v, minlength=(int(z[:, d].max()) + 1) * nv).reshape(-1, nv)
            joint = joint / joint.sum()
            outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
            nz = joint > 0
            mi[d, k] = max(0.0, float((joint[nz] * np.log(joint[nz] / outer[nz])).sum()))
    return mi


def mig(codes: np.ndarray, factors: dict[str, np.ndarray], bins: int = _BINS) -> dict[str, Any]:
    """Mutual information gap (Chen et al., 2018, Section 4.1, Eq. 7) of a code.

    Args:
        codes: ``(N, S)``.
        factors: ``{name: (N,) discrete values}``, none constant.
        bins: Equal-frequency bins per dimension.

    Returns:
        ``{"mig", "per_factor": {name: {"entropy", "gap", "dims", "mi"}}, "mi_matrix"}``: ``gap``
        is ``(top MI - second MI) / H(factor)`` in [0, 1], ``dims`` the two most informative
        dimensions, ``mi`` (nats) that of every dimension; ``mig`` the mean gap.
    """
    mi = mutual_info_matrix(codes, factors, bins)
    per: dict[str, Any] = {}
    for k, (name, values) in enumerate(factors.items()):
        h = _entropy(values)
        col = mi[:, k]
        top = np.argsort(-col, kind="stable")
        second = col[top[1]] if len(col) > 1 else 0.0
        gap = float(np.clip((col[top[0]] - second) / h, 0.0, 1.0)) if h > 1e-12 else 0.0
        per[name] = {"entropy": h, "gap": gap, "dims": [int(d) for d in top[:2]], "mi": [float(x) for x in col]}
    gaps = [p["gap"] for p in per.values()]
    return {"mig": float(np.mean(gaps)) if gaps else 0.0, "per_factor": per, "mi_matrix": mi}


def modularity(mi: np.ndarray) -> float:
    """Modularity (Ridgeway & Mozer, 2018, Section 3) of an ``(S, K)`` mutual-information matrix.

    For dimension ``i`` with ``theta_i = max_k m_ik`` and ``t_ik = theta_i`` at that ``k``, else
    0: ``delta_i = sum_k (m_ik - t_ik)^2 / (theta_i^2 (K - 1))``, modularity ``= mean_i (1 -
    delta_i)`` over the dimensions that carry any information (``theta_i > 0``). 1 when each
    dimension informs about one factor only. Dimensions of pure noise count (their estimated MI
    is spread evenly, so they lower the score), as in the original definition.
    """
    S, K = mi.shape
    if K < 2:
        return 1.0
    theta = mi.max(axis=1)
    ok = theta > 1e-12
    if not ok.any():
        return 0.0
    m = mi[ok]
    t = np.zeros_like(m)
    t[np.arange(len(m)), m.argmax(axis=1)] = theta[ok]
    delta = ((m - t) ** 2).sum(axis=1) / (theta[ok] ** 2 * (K - 1))
    return float(np.mean(1.0 - delta))


# ---------------------------------------------------------------------- DCI
def _norm_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy with log base ``base`` of each row of ``p`` (rows sum to 1)."""
    if base < 2:
        return np.zeros(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(base)


def dci(codes: np.ndarray, factors: dict[str, np.ndarray], seed: int = 0, test_frac: float = 0.25,
        c: float = 1.0) -> dict[str, Any]:
    """DCI scores (Eastwood & Williams, 2018, Section 2) with one linear probe per factor.

    Each factor ``k`` gets a multinomial logistic regression (L2, ``C = c``, lbfgs: deterministic)
    on the standardised code, fitted on a random ``1 - test_frac`` of the cells (split from
    ``numpy.random.default_rng(seed)``; one BLAS thread). The importance ``R_ik`` of dimension ``i`` is the sum over
    classes of ``|w_cik|``, normalised so that each factor's importances sum to 1 (as tree
    importances do in the paper's random-forest variant). With ``P_ik = R_ik / sum_k' R_ik'``:

    * disentanglement ``D = sum_i rho_i (1 - H_K(P_i.))``, ``rho_i = sum_k R_ik / sum R``
      (Section 2.1, Eqs. 1-2; ``H_K`` is the entropy with log base ``K``);
    * completeness ``C = mean_k (1 - H_S(P~_.k))``, ``P~_ik = R_ik / sum_i' R_i'k`` (Section 2.2,
      Eq. 3);
    * informativeness: the probes' mean held-out accuracy (Section 2.3, read as accuracy for
      categorical factors); ``chance`` is the mean held-out accuracy of predicting each factor's
      most frequent training value.

    Returns:
        ``{"disentanglement", "completeness", "informativeness", "chance", "importance" (S x K
        list), "per_factor": {name: {"accuracy", "chance", "completeness", "top_dim"}}}``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    codes = np.asarray(codes, dtype=np.float64)
    N, S = codes.shape
    K = len(factors)
    order = np.random.default_rng(seed).permutation(N)
    n_test = min(max(1, int(round(test_frac * N))), N - 1)
    test, train = order[:n_test], order[n_test:]
    mean, std = codes[train].mean(axis=0), codes[train].std(axis=0)
    std[std < 1e-12] = 1.0
    x = (codes - mean) / std
    R = np.zeros((S, K))
    per: dict[str, Any] = {}
    for k, (name, values) in enumerate(factors.items()):
        y = np.asarray(values)
        labels, counts = np.unique(y[train], return_counts=True)
        majority = labels[np.argmax(counts)]
        chance = float(np.mean(y[test] == majority))
        if len(labels) < 2:  # constant on the training cells: nothing to learn
            per[name] = {"accuracy": chance, "chance": chance}
            continue
        clf = LogisticRegression(C=c, max_iter=200, tol=1e-4, random_state=seed)
        # One BLAS thread: these small fits run ten times slower when threads compete.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x[train], y[train])
        w = np.abs(clf.coef_).sum(axis=0)
        R[:, k] = w / w.sum() if w.sum() > 0 else 0.0
        per[name] = {"accuracy": float(clf.score(x[test], y[test])), "chance": chance}
    total = R.sum()
    rows = R.sum(axis=1)
    used = rows > 0
    p_dim = R[used] / rows[used, None]
    d_i = 1.0 - _norm_entropy(p_dim, K)
    disent = float((rows[used] / total * d_i).sum()) if total > 0 else 0.0
    cols = R.sum(axis=0)
    fitted = cols > 0
    c_k = 1.0 - _norm_entropy((R[:, fitted] / cols[fitted]).T, S)
    for name, ck, top in zip(
        [n for n, f in zip(factors, fitted) if f], c_k, R[:, fitted].argmax(axis=0)
    ):
        per[name].update(completeness=float(ck), top_dim=int(top))
    return {
        "disentanglement": disent,
        "completeness": float(c_k.mean()) if len(c_k) else 0.0,
        "informativeness": float(np.mean([p["accuracy"] for p in per.values()])) if per else 0.0,
        "chance": float(np.mean([p["chance"] for p in per.values()])) if per else 0.0,
        "importance": R.tolist(),
        "per_factor": per,
    }


# ---------------------------------------------------------------------- together
def random_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal ``(n, n)`` matrix (Haar measure: QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def score_codes(codes: np.ndarray, factors: dict[str, np.ndarray], seed: int = 0,
                bins: int = _BINS) -> dict[str, Any]:
    """MIG, DCI and modularity of one code against the factors: ``{key: value}`` of
    :data:`SUMMARY_KEYS`, plus ``"chance"`` (informativeness of guessing) and the details
    ``"mig_detail"`` (:func:`mig`) and ``"dci"`` (:func:`dci`)."""
    m = mig(codes, factors, bins)
    d = dci(codes, factors, seed)
    return {
        "mig": m["mig"],
        "dci_disentanglement": d["disentanglement"],
        "dci_completeness": d["completeness"],
        "dci_informativeness": d["informativeness"],
        "modularity": modularity(m["mi_matrix"]),
        "chance": d["chance"],
        "mig_detail": m,
        "dci": d,
    }


def disentanglement(
    space: Space,
    codes: np.ndarray,
    archs: list[Arch],
    flops: np.ndarray | None = None,
    seed: int = 0,
    baselines: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Disentanglement of a code over the independent factors, next to its baselines.

    Args:
        space: The search space.
        codes: ``(N, S)`` posterior means of ``archs``.
        archs: The cells.
        flops: FLOPs per cell (NaN where unknown), binned into deciles as a derived attribute;
            None to skip.
        seed: Seed of the rotation and of the probes' train/test split.
        baselines: Other codes ``(N, S')`` of the same cells to score the same way (e.g.
            ``{"beta0": codes of a beta = 0 autoencoder}``).

    Returns:
        ``{"mig", "factors", "codes", "dci", "modularity", "attributes", "skipped"}``: ``mig`` is
        the headline MIG over the independent factors (the non-constant ``op@i``), ``factors``
        their names; ``codes`` maps ``"trained"``, ``"rotated"`` (the code times a random
        orthogonal matrix) and each baseline to its :data:`SUMMARY_KEYS` and ``"chance"``;
        ``dci`` is :func:`dci` of the trained code; ``attributes`` has, per factor and per derived
        attribute (``edges``, ``depth``, ``flops``), ``{"kind": "factor" | "derived", "entropy",
        "gap", "dims", "mi"}``, plus ``"accuracy"``/``"chance"`` of the probe for factors;
        ``skipped`` lists the attributes constant over the cells.
    """
    codes = np.asarray(codes, dtype=np.float64)
    attrs = attributes(space, archs)
    if flops is not None:
        ok = ~np.isnan(flops)
        if ok.sum() >= 2:
            qs = np.quantile(flops[ok], np.linspace(0, 1, _BINS + 1)[1:-1])
            binned = np.full(len(flops), -1)
            binned[ok] = np.digitize(flops[ok], qs)
            attrs["flops"] = binned
    skipped = [n for n, v in attrs.items() if _entropy(v[v >= 0]) < 1e-9]  # nothing to control
    factors = {n: v for n, v in attrs.items() if is_factor(n) and n not in skipped}
    derived = {n: v for n, v in attrs.items() if not is_factor(n) and n not in skipped}
    result: dict[str, Any] = {"factors": list(factors), "skipped": skipped, "attributes": {}, "codes": {},
                              "dci": {}, "modularity": 0.0}
    rng = np.random.default_rng(seed)
    rotated = codes @ random_rotation(codes.shape[1], rng)
    for key, z in {"trained": codes, "rotated": rotated, **(baselines or {})}.items():
        full = score_codes(z, factors, seed) if factors else {}
        result["codes"][key] = {k: float(full.get(k, 0.0)) for k in (*SUMMARY_KEYS, "chance")}
        if key == "trained" and full:
            result["dci"] = {k: v for k, v in full["dci"].items() if k != "per_factor"}
            result["modularity"] = full["modularity"]
            for name, a in full["mig_detail"]["per_factor"].items():
                result["attributes"][name] = {"kind": "factor", **a, **full["dci"]["per_factor"][name]}
    result["mig"] = result["codes"]["trained"]["mig"]
    for name, values in derived.items():
        rows = values >= 0
        a = mig(codes[rows], {name: values[rows]})["per_factor"][name]
        result["attributes"][name] = {"kind": "derived", **a}
    return result
