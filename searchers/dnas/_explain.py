"""Interpret a DNAS study: latent traversals, factor plots and a disentanglement score.

``explain(path, out_dir)`` reads a saved DNAS searcher state (the plain-data file ``ArchSearcher.save``
writes; :mod:`raynas._state`) and writes, into ``out_dir``:

* ``traversals.png`` / ``traversals.txt``: for chosen latent dimensions, the base cell's code
  with ``z_s`` swept over ``[-span, span]`` and decoded, as a token image and a text table;
* ``factors.png``: for every latent dimension, ``mu_s`` against accuracy over the evaluated
  cells, with the Pearson correlation;
* ``report.md`` and ``scores.json``: the disentanglement of the code over the independent
  factors (the token at each sequence position): MIG (the headline) and DCI disentanglement,
  completeness and informativeness (:mod:`raynas.searchers.dnas._disentangle`), always next to
  two baselines scored the same way on the same cells: the code times a random orthogonal
  matrix, and the code of a beta = 0 autoencoder trained like the saved controller (same
  config with ``disentangle=False``, same cells, same round schedule, fixed seed). Derived
  attributes (edge count and depth of ``space.to_graph``, binned FLOPs where known) are
  reported per attribute, apart from the headline.

Example:
    >>> from raynas.searchers.dnas._explain import explain
    >>> result = explain("runs/cmp/studies/dnas_0", "runs/cmp/explain")  # doctest: +SKIP
    >>> result["scores"]["mig"], result["scores"]["codes"]["beta0"]["mig"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from raynas._state import StateFileError, load_state
from raynas.searchers.dnas._disentangle import disentanglement
from raynas.searchers.dnas._report import report_markdown
from raynas.spaces import Arch, Space, get_space

#: The file name searched for under a directory (``raynas compare`` keeps one per study).
STATE_FILE = "searcher.pt"
#: What older raynas versions wrote: pickles, which are not read (unpickling can run code).
OLD_STATE_FILES = ("searcher.pkl", "searcher_state.pkl")


def find_states(path: str | os.PathLike) -> list[Path]:
    """``path`` itself if it is a file, else every ``searcher.pt`` below it."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return sorted(path.rglob(STATE_FILE))


def load_searcher(file: str | os.PathLike, space: Space | None = None):
    """A :class:`DNASSearcher` restored from a saved state file."""
    from raynas.searchers.dnas import DNASConfig, DNASSearcher

    state = load_state(file)
    if not isinstance(state, dict) or state.get("class") != "DNASSearcher":
        raise ValueError(f"{file} holds a {state.get('class')} state, not a DNASSearcher one")
    strategy = state["strategy"]
    space = space or get_space(strategy["space"])
    stored = state.get("config") or strategy["config"]  # older states kept it with the strategy's
    config = DNASConfig(**{**stored, "device": "cpu"})
    searcher = DNASSearcher(space, metric=state["metric"], mode=state["mode"], seed=state["seed"], config=config)
    if searcher.ctrl_config.vocab_size != strategy["controller"]["vocab_size"]:
        raise ValueError(f"{file}: its controller does not match space {space.name!r}; pass space=")
    searcher.set_state(state)
    # Whether the saved controller's FLOPs head learned a cost (its cost_fn is not in the state).
    searcher.trained_with_cost = bool(strategy.get("use_cost"))
    return searcher


def explain(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    dims: list[int] | None = None,
    base: Arch | str | dict | None = None,
    span: float = 3.0,
    steps: int = 7,
    n_cells: int = 2000,
    seed: int = 0,
    space: Space | None = None,
    baselines: bool = True,
) -> dict[str, Any]:
    """Explain the DNAS controller(s) saved under ``path``.

    Args:
        path: A state file, or a directory searched recursively for ``searcher.pt`` files;
            states of other searchers are skipped, and so are unreadable files (with a warning).
        out_dir: Output folder; with several DNAS states, one subfolder per state (named after
            the state's parent folder, e.g. ``dnas_0``).
        dims: Latent dimensions to traverse (default: the 8 most active, by variance of ``mu``).
        base: Cell to traverse from (an architecture, its config dict or its string); default the
            best evaluated cell.
        span: Traversal range ``[-span, span]`` of ``z_s``.
        steps: Points per traversal.
        n_cells: Random cells added to the evaluated ones for the mutual-information estimate.
        seed: Seed of those random cells, of the random rotation, of the probes' train/test
            split and of the beta = 0 autoencoder.
        space: The search space, when the state's space name alone does not rebuild it.
        baselines: Also train the beta = 0 autoencoder baseline (costs about as much as the
            study's own controller training); the rotated-code baseline is always scored.

    Returns:
        For one state: ``{"state", "figures", "tables", "report", "json", "scores"}``. For several:
        ``{"studies": {name: that dict}}``. ``scores`` is
        :func:`~raynas.searchers.dnas._disentangle.disentanglement`'s dict (``"mig"``: the headline
        MIG over the independent factors; ``"codes"``: ``"trained"``, ``"rotated"`` and
        ``"beta0"`` rows of MIG / DCI scores; ``"attributes"``: per factor and derived
        attribute) plus ``"baseline"`` (how the beta = 0 code was trained), ``"pearson"``,
        ``"validity_rate"`` and ``"seconds"``.
    """
    import matplotlib

    matplotlib.use("Agg")
    files = [Path(path)] if Path(path).is_file() else [f for f in find_states(path) if _is_dnas(f)]
    if not files:
        old = [p for name in OLD_STATE_FILES for p in Path(path).rglob(name)]
        hint = (f"; {old[0]} and the like are pickles of an older raynas, which are not read "
                "(unpickling can run code)" if old else "")
        raise FileNotFoundError(f"{path}: no DNAS searcher state ({STATE_FILE}) found{hint}")
    out_dir = Path(out_dir)
    if len(files) == 1:
        return _explain_one(files[0], out_dir, dims, base, span, steps, n_cells, seed, space, baselines)
    return {
        "studies": {
            f.parent.name: _explain_one(f, out_dir / f.parent.name, dims, base, span, steps, n_cells, seed, space,
                                        baselines)
            for f in files
        }
    }


def _is_dnas(file: Path) -> bool:
    try:
        state = load_state(file)
    except StateFileError as exc:
        warnings.warn(f"skipped: {exc}", stacklevel=3)
        return False
    return isinstance(state, dict) and state.get("class") == "DNASSearcher"


def _explain_one(file, out_dir: Path, dims, base, span, steps, n_cells, seed, space, baselines) -> dict[str, Any]:
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    s = load_searcher(file, space)
    space = s.space
    ev = s.evaluated
    if not ev:
        raise ValueError(f"{file}: the study has no evaluated cells to explain")
    metric = s._metric
    archs = [h["arch"] for h in ev]
    acc = np.array([float(h["result"][metric]) for h in ev])
    mu = s.encode(archs)  # (E, S)
    S = mu.shape[1]
    if dims is None:
        dims = [int(d) for d in np.argsort(-mu.var(axis=0), kind="stable")[: min(8, S)]]
    if base is None:
        base_arch = max(ev, key=lambda h: h["score"])["arch"]
    elif isinstance(base, str):
        base_arch = space.from_string(base)
    elif isinstance(base, dict):
        base_arch = space.from_config(base)
    else:
        base_arch = base
    values = np.linspace(-span, span, steps)
    trav = _traversals(s, base_arch, dims, values)
    tables = {"traversals": str(out_dir / "traversals.txt")}
    Path(tables["traversals"]).write_text(_traversal_table(s, base_arch, dims, values, trav))
    figures = {
        "traversals": _plot_traversals(trav, dims, values, space, out_dir / "traversals.png"),
        "factors": _plot_factors(mu, acc, metric, out_dir / "factors.png"),
    }
    rng = np.random.default_rng(seed)
    pool = s.candidates
    extra = [pool[int(rng.integers(len(pool)))] if pool else space.sample(rng) for _ in range(n_cells)]
    cells = archs + extra
    others, baseline = {}, {"beta0": None}
    if baselines:
        others["beta0"], baseline["beta0"] = beta0_codes(s, cells, seed)
    scores = disentanglement(space, s.encode(cells), cells, _flops(s, cells, ev), seed=seed, baselines=others)
    scores["baseline"] = {"rotated": {"seed": seed}, **baseline}
    scores["pearson"] = {str(d): _pearson(mu[:, d], acc) for d in range(S)}
    scores["validity_rate"] = s.validity_rate
    report = out_dir / "report.md"
    scores["seconds"] = time.perf_counter() - start
    report.write_text(report_markdown(file, s, base_arch, scores, figures, tables))
    js = out_dir / "scores.json"
    js.write_text(json.dumps(scores, indent=2, sort_keys=True))
    return {"state": str(file), "figures": figures, "tables": tables, "report": str(report),
            "json": str(js), "scores": scores}


# ---------------------------------------------------------------------- beta = 0 baseline
def beta0_codes(s, cells: list[Arch], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Codes of ``cells`` from a beta = 0 autoencoder trained like the controller ``s`` (from :func:`load_searcher`).

    A fresh :class:`DNASSearcher` with the same config but ``disentangle=False`` (the paper's
    Table 3 ablation: ``beta = 0``, ``z = mu``) and seed ``seed`` replays the saved study's
    training: one training round (:meth:`DNASSearcher._train`, Algorithm 1 lines 5-10) per
    round of ``s.round_log`` on the evaluated cells labelled by then (all of them, in one round,
    for states without a round log). The FLOPs head learns the space's cost model when the
    saved controller learned a cost.

    Returns:
        ``(codes (N, S), {"seed", "rounds", "epochs", "seconds"})``.
    """
    from raynas.searchers._neural import torch_generator, torch_threads
    from raynas.searchers.dnas import DNASSearcher

    start = time.perf_counter()
    config = dataclasses.replace(s.config, disentangle=False)
    b = DNASSearcher(s.space, metric=s._metric, mode=s._mode, seed=seed, config=config,
                     cost_fn=s.space.cost if getattr(s, "trained_with_cost", False) else None)
    ev = s.evaluated
    archs = [h["arch"] for h in ev]
    scores = np.array([h["score"] for h in ev], dtype=np.float64)
    schedule = [int(r["labelled"]) for r in s.round_log if r.get("labelled")] or [len(archs)]
    for r, n in enumerate(schedule):
        b.rounds = r  # the first round is the cold one (warm-up epochs)
        with torch_threads(b.num_threads):
            b._train(archs[:n], scores[:n], torch_generator(b.rng))
    b.rounds = len(schedule)
    info = {"seed": seed, "rounds": len(schedule), "epochs": b.epochs_trained,
            "seconds": time.perf_counter() - start}
    return b.encode(cells), info


# ---------------------------------------------------------------------- traversals
def _traversals(s, base_arch: Arch, dims: list[int], values: np.ndarray) -> np.ndarray:
    """Token sequences ``(len(dims), steps, T)`` decoded along each traversal (0 = rejected)."""
    z0 = s.encode([base_arch])[0]
    codes = np.repeat(z0[None], len(dims) * len(values), axis=0).reshape(len(dims), len(values), -1)
    for i, d in enumerate(dims):
        codes[i, :, d] = values
    archs = s.decode(codes.reshape(-1, codes.shape[-1]))
    T = s.space.seq_length
    toks = [s.space.to_sequence(a) if a is not None else [0] * T for a in archs]
    return np.array(toks).reshape(len(dims), len(values), T)


def _traversal_table(s, base_arch, dims, values, trav) -> str:
    base_tokens = s.space.to_sequence(base_arch)
    lines = [
        f"base cell: {s.space.to_string(base_arch)}",
        f"base tokens: {' '.join(map(str, base_tokens))}  ([t] = token differs from the base)",
        "",
        "| dim | " + " | ".join(f"z={v:+.2f}" for v in values) + " |",
        "|---|" + "---|" * len(values),
    ]
    for i, d in enumerate(dims):
        cells = []
        for seq in trav[i]:
            cells.append(" ".join(f"[{t}]" if t != b else str(t) for t, b in zip(seq, base_tokens)))
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    changed = {d: sorted({p for seq in trav[i] for p, (t, b) in enumerate(zip(seq, base_tokens)) if t != b})
               for i, d in enumerate(dims)}
    lines += ["", "positions each dimension changes:"]
    lines += [f"  dim {d}: {v if v else 'none'}" for d, v in changed.items()]
    return "\n".join(lines) + "\n"


def _plot_traversals(trav, dims, values, space: Space, path: Path) -> str:
    import matplotlib.pyplot as plt

    n = len(dims)
    fig, axes = plt.subplots(1, n, figsize=(1.2 + 1.6 * n, 0.6 + 0.35 * space.seq_length), squeeze=False)
    for i, d in enumerate(dims):
        ax = axes[0, i]
        ax.imshow(trav[i].T, cmap="tab20", vmin=0, vmax=max(20, space.vocab_size), aspect="auto")
        for (x, y), t in np.ndenumerate(trav[i]):
            ax.text(x, y, str(t), ha="center", va="center", fontsize=6)
        ax.set_title(f"dim {d}", fontsize=8)
        ax.set_xticks(range(len(values)), [f"{v:+.1f}" for v in values], fontsize=5, rotation=90)
        ax.set_yticks(range(space.seq_length), [str(p) for p in range(space.seq_length)], fontsize=5)
    axes[0, 0].set_ylabel("sequence position")
    fig.suptitle("latent traversals (colour = decoded token)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def _plot_factors(mu: np.ndarray, acc: np.ndarray, metric: str, path: Path) -> str:
    import matplotlib.pyplot as plt

    S = mu.shape[1]
    # The y-axis shows the bulk of the cells: a few diverged cells near chance would flatten it.
    lo, hi = float(np.percentile(acc, 5)), float(acc.max())
    pad = 0.05 * max(hi - lo, 1e-6)
    cols = int(np.ceil(np.sqrt(S)))
    rows = int(np.ceil(S / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 1.7 * rows), squeeze=False)
    for d in range(rows * cols):
        ax = axes[d // cols, d % cols]
        if d >= S:
            ax.axis("off")
            continue
        ax.scatter(mu[:, d], acc, s=4, alpha=0.6)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"z{d}  r={_pearson(mu[:, d], acc):+.2f}", fontsize=7)
        ax.tick_params(labelsize=5)
    fig.supylabel(f"{metric} (axis from the 5th percentile up)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or x.std() < 1e-12 or y.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _flops(s, cells: list[Arch], ev: list[dict]) -> np.ndarray | None:
    """FLOPs of each cell from the results or the space's cost model; NaN where unknown."""
    known = {h["key"]: h["result"].get("flops") for h in ev if h["result"]}
    out = []
    for a in cells:
        value = known.get(s.space.key(a))
        if value is None:
            cost = s.space.cost(a)
            value = cost.get("flops") if cost else None
        out.append(np.nan if value is None else float(value))
    arr = np.array(out)
    return None if np.isnan(arr).all() else arr
