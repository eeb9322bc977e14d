"""Search quality of DNAS against its baselines, measured with ``raynas compare``.

Each setting is one ``raynas compare`` experiment (one Ray Tune trial per study, one CPU each)
of dnas, seminas, nao, evolution, tpe and random over the same seeds, with test accuracy as the
objective. The script reads each ``results.parquet`` and reports, per method, the mean best
test accuracy and the mean regret to the optimum (within the FLOPs limit where one is set)
after 50, 100 and 150 queries, plus the issue's target: DNAS's regret at 100 queries at most
half that of the best baseline in the same run.

Settings (``--settings``, comma-separated; default all):
    nb201-cifar10, nb201-cifar100, nb201-imagenet16   NAS-Bench-201 (shared nats_bench.csv)
    macro-flops                                       NAS-Bench-Macro, FLOPs <= 45.5M (the
                                                      25th percentile: a quarter of cells fit)
    graph-cora                                        NAS-Bench-Graph, Cora (ships with its package)
    nb201-mean3-val                                   an NB201 table built with `raynas data import`:
                                                      val_accuracy (the objective) = mean of the three
                                                      datasets, test_accuracy = CIFAR-10

Usage:
    python benchmarks/bench_quality.py --seeds 50 --out /tmp/quality
                                            # -> benchmarks/results/quality.json

An interrupted run continues where it stopped when started again with the same ``--out``.
Runs over disjoint seed ranges combine into one table (each study depends only on its method
and seed):
    python benchmarks/bench_quality.py --seeds 30 --out /tmp/q1
    python benchmarks/bench_quality.py --seeds 20 --first-seed 30 --out /tmp/q2
    python benchmarks/bench_quality.py --combine /tmp/q1,/tmp/q2      # 50 seeds
Settings whose data is absent are skipped with the reason printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, shared, write  # noqa: E402

METHODS = ["dnas", "seminas", "nao", "arch2vec-bo", "arch2vec-rl", "enas", "evolution", "tpe", "random"]
BASELINES = [m for m in METHODS if m != "dnas"]
CLASSIC = ["evolution", "tpe", "random"]  # the baselines that are not neural predictors
CHECKPOINTS = (50, 100, 150)
METRIC = "test_accuracy"

SETTINGS: dict[str, dict] = {
    "nb201-cifar10": {"benchmark": "nasbench201", "dataset": "cifar10", "data": "nasbench201/nats_bench.csv"},
    "nb201-cifar100": {"benchmark": "nasbench201", "dataset": "cifar100", "data": "nasbench201/nats_bench.csv"},
    "nb201-imagenet16": {
        "benchmark": "nasbench201",
        "dataset": "ImageNet16-120",
        "data": "nasbench201/nats_bench.csv",
    },
    "macro-flops": {
        "benchmark": "nasbench_macro",
        "dataset": None,
        "data": "nasbench_macro/nas-bench-macro_cifar10.json",
        "max_cost": {"flops": 45_539_840.0},
    },
    "graph-cora": {"benchmark": "nasbench_graph", "dataset": "cora", "data": None},
    # A table that no default was chosen on, with validation accuracy driving the search: the
    # NB201 cells with val_accuracy = the mean of their three datasets' accuracies (a landscape
    # unlike any single one) and test_accuracy = CIFAR-10, written by `raynas data import`.
    "nb201-mean3-val": {
        "benchmark": "custom",
        "dataset": None,
        "data": "nasbench201/nats_bench.csv",
        "metric": "val_accuracy",
        "build": "nb201_mean3",
    },
}


def build_nb201_mean3(csv_path: Path, dest: Path) -> Path:
    """Write the ``nb201-mean3-val`` table with ``raynas data import`` (once; reused after)."""
    import csv
    import subprocess

    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_suffix(".csv")
    with open(csv_path, newline="") as src, open(staged, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["arch", "mean3", "cifar10"])
        for row in csv.DictReader(src):
            accs = [float(row[c]) for c in
                    ("CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs")]
            writer.writerow([row["ArchitectureString"], sum(accs) / 3, accs[0]])
    subprocess.run(["raynas", "data", "import", str(staged), "--space", "nasbench201", "--arch-column", "arch",
                    "--metric", "val_accuracy=mean3", "--metric", "test_accuracy=cifar10",
                    "--dataset", "nb201-mean3", "--out", str(dest)], check=True)
    return dest


def setting_data(name: str, out: Path) -> str | None | bool:
    """The data path of a setting (built under ``out`` if need be); False when the data is absent."""
    spec = SETTINGS[name]
    if spec["data"] is None:
        return None
    path = shared(spec["data"])
    if path is None:
        return False
    if spec.get("build") == "nb201_mean3":
        path = build_nb201_mean3(path, out / f"{name}.parquet")
    return str(path)


def run_setting(
    name: str, seeds: int, budget: int, out: Path, first_seed: int, methods: list[str] = METHODS,
    reuse: dict | None = None,
) -> dict | None:
    from raynas.runner._compare import CompareConfig, compare

    spec = SETTINGS[name]
    data = setting_data(name, out)
    if data is False:
        return None
    cfg = CompareConfig(
        benchmark=spec["benchmark"],
        methods=methods,
        seeds=seeds,
        budget=budget,
        dataset=spec["dataset"],
        data=data,
        metric=spec.get("metric", METRIC),
        max_cost=spec.get("max_cost", {}),
        first_seed=first_seed,
        name=name,
    )
    folder = out / name
    t0 = time.perf_counter()
    compare(cfg, folder, resume=(folder / "experiment.json").exists(), progress=True)
    wall = time.perf_counter() - t0
    (folder / "bench_wall.json").write_text(json.dumps({"wall_s": wall}))
    return summarize(name, [folder], budget, reuse)


def _int_marks(row: dict) -> dict:
    """A stored row with its budget marks as ints again (JSON made them strings)."""
    return {k: {int(c): v for c, v in val.items()} if k in ("best", "regret", "regret_se") else val
            for k, val in row.items()}


ROUND_FIELDS = ("targeted_new", "unlabeled", "sources", "steps", "new", "from_sources")


def dnas_rounds(folders: list[Path]) -> dict:
    """Per-round diagnostics of every DNAS study, from each study's final searcher state.

    Per round (mean over studies): ``targeted_new``, the new cells the dense (and edge) codes of
    Eq. 4 added to ``D^``; ``unlabeled``, ``|D^|``; ``sources``, the top-P starting cells of Eq. 7;
    ``steps``, the step size NAO's schedule needed; ``new``, the new allowed cells Eq. 7 gave
    (of which the first ``batch`` are queued); ``from_sources``, the allowed unevaluated sources
    that filled a round Eq. 7 left short.
    """
    from raynas._state import load_state

    logs = []
    for folder in folders:
        for state in sorted(folder.glob("studies/dnas_seed*/searcher.pt")):
            logs.append(load_state(state)["strategy"].get("round_log", []))
    if not logs:
        return {}
    n = max(len(log) for log in logs)
    per_round = []
    for r in range(n):
        rows = [log[r] for log in logs if len(log) > r]
        per_round.append({"round": r, "studies": len(rows),
                          "labelled": float(np.mean([x["labelled"] for x in rows])), **{
                              f: round(float(np.mean([x.get(f, np.nan) for x in rows])), 2) for f in ROUND_FIELDS}})
    return {"studies": len(logs), "per_round": per_round}


def summarize(name: str, folders: list[Path], budget: int, reuse: dict | None = None) -> dict:
    """Statistics over the studies of one setting, read from one or more compare folders.

    Every study depends only on its method and seed, so runs over disjoint seed ranges
    (``--first-seed``) combine into the same table that one run over all seeds would give.
    """
    import pyarrow as pa

    from raynas.benchmarks import load
    from raynas.report import incumbent_matrix

    spec = SETTINGS[name]
    metric = spec.get("metric", METRIC)
    data = setting_data(name, folders[0].parent)
    if data is False:
        return None
    tables, wall = [], 0.0
    for folder in folders:
        tables.append(pq.read_table(folder / "results.parquet"))
        timing = folder / "bench_wall.json"
        wall += json.loads(timing.read_text())["wall_s"] if timing.exists() else float("nan")
    table = pa.concat_tables(tables, promote_options="default")
    keys = set(zip(table["method"].to_pylist(), table["seed"].to_pylist(), table["query"].to_pylist()))
    if len(keys) != table.num_rows:
        raise SystemExit(f"{name}: the folders {[str(f) for f in folders]} share seeds; combine disjoint runs only")
    seeds = sorted(set(table["seed"].to_pylist()))
    bench = load(spec["benchmark"], path=data, dataset=spec["dataset"])
    optimum = bench.optimum(metric, max_cost=spec.get("max_cost") or None)
    marks = [c for c in CHECKPOINTS if c < budget] + [budget]
    rows = {}
    ran = set(table["method"].to_pylist())
    for method in METHODS:
        if method not in ran:
            if not reuse or method not in reuse.get("methods", {}):
                raise SystemExit(f"{name}: {method} did not run; pass --reuse NAME to take its row from a stored run")
            if reuse["budget"] != budget:
                raise SystemExit(f"{name}: the stored run has budget {reuse['budget']}, not {budget}")
            rows[method] = {**_int_marks(reuse["methods"][method]), "reused": True}
            continue
        mat = incumbent_matrix(table, method, budget)
        rows[method] = {
            "seeds": int(mat.shape[0]),
            "best": {c: float(np.mean(mat[:, c - 1])) for c in marks},
            "regret": {c: max(0.0, float(optimum - np.mean(mat[:, c - 1]))) for c in marks},
            "regret_se": {c: float(np.std(mat[:, c - 1]) / np.sqrt(len(mat))) for c in marks},
            "reached_optimum": int(np.sum(mat[:, -1] >= optimum - 1e-9)),
            # mean regret (and its standard error) after every query, for the figure
            "regret_curve": np.round(optimum - mat.mean(axis=0), 5).tolist(),
            "regret_curve_se": np.round(mat.std(axis=0) / np.sqrt(len(mat)), 5).tolist(),
        }
    at = 100 if 100 in marks else marks[-1]
    best_base = min(BASELINES, key=lambda m: rows[m]["regret"][at])
    best_classic = min(CLASSIC, key=lambda m: rows[m]["regret"][at])

    def ratio_to(method: str) -> float:
        return rows["dnas"]["regret"][at] / max(rows[method]["regret"][at], 1e-12)

    ratio = ratio_to(best_base)
    if "dnas" in ran:
        rows["dnas"]["rounds"] = dnas_rounds(folders)
    if reuse and "dnas" in reuse.get("methods", {}) and "dnas" in ran:
        rows["dnas (before)"] = {**_int_marks(reuse["methods"]["dnas"]), "reused": True}
    elif reuse and "dnas (before)" in reuse.get("methods", {}):  # kept while other methods are added
        rows["dnas (before)"] = {**_int_marks(reuse["methods"]["dnas (before)"]), "reused": True}
    return {
        "benchmark": spec["benchmark"],
        "dataset": spec["dataset"],
        "max_cost": spec.get("max_cost", {}),
        "metric": metric,
        "optimum": optimum,
        "seeds": len(seeds),
        "seed_range": [seeds[0], seeds[-1]],
        "runs": len(folders),
        "budget": budget,
        "wall_s": wall,
        "methods": rows,
        "target": {
            "at": at,
            "best_baseline": best_base,
            "dnas_over_best_baseline": ratio,
            "met": bool(ratio <= 0.5),
            "best_classic": best_classic,
            "dnas_over_best_classic": ratio_to(best_classic),
        },
    }


def print_setting(name: str, res: dict) -> None:
    marks = list(res["methods"]["dnas"]["best"])
    print(f"\n{name}: {res['seeds']} seeds, optimum {res['optimum']:.3f}, {res['wall_s']:.0f} s")
    print(f"{'method':<10}" + "".join(f"{'best@' + str(c):>12}{'regret':>9}" for c in marks) + "  at opt.")
    for method, row in res["methods"].items():
        cells = "".join(f"{row['best'][c]:>12.3f}{row['regret'][c]:>9.3f}" for c in marks)
        print(f"{method:<10}{cells}  {row['reached_optimum']}/{row['seeds']}")
    t = res["target"]
    print(f"dnas regret@{t['at']} / best baseline ({t['best_baseline']}): {t['dnas_over_best_baseline']:.2f}"
          f" -> target (<= 0.5) {'met' if t['met'] else 'NOT met'}")


def markdown(settings: dict[str, dict]) -> str:
    """One Markdown table per setting (for the README)."""
    out = []
    for name, res in settings.items():
        marks = list(res["methods"]["dnas"]["best"])
        limit = "".join(f", {k} <= {v:.4g}" for k, v in res["max_cost"].items())
        out.append(f"**{name}** ({res['seeds']} seeds{limit}; optimum {res['optimum']:.3f}; "
                   f"{res['wall_s'] / 60:.0f} min)\n")
        out.append("| method | " + " | ".join(f"best@{c}" for c in marks) + " | regret@"
                   + " | regret@".join(map(str, marks)) + " | reached opt. |")
        out.append("|---" * (2 * len(marks) + 2) + "|")
        for method, row in res["methods"].items():
            out.append(f"| {method} | " + " | ".join(f"{row['best'][c]:.3f}" for c in marks) + " | "
                       + " | ".join(f"{row['regret'][c]:.3f}" for c in marks)
                       + f" | {row['reached_optimum']}/{row['seeds']} |")
        t = res["target"]
        out.append(f"\nDNAS regret@{t['at']} / best baseline ({t['best_baseline']}): "
                   f"{t['dnas_over_best_baseline']:.2f} (target <= 0.5: {'met' if t['met'] else 'not met'}); "
                   f"/ best of evolution, TPE, random ({t['best_classic']}): {t['dnas_over_best_classic']:.2f}\n")
    out.append(summary_table(settings))
    return "\n".join(out)


def summary_table(settings: dict[str, dict]) -> str:
    """All settings in one table: regret at every mark per method, the best at the target mark in bold."""
    out = ["| setting (optimum; wall time) | " + " | ".join(METHODS)
           + " | dnas / best baseline | dnas / best classic |",
           "|---" * (len(METHODS) + 3) + "|"]
    for name, res in settings.items():
        t = res["target"]
        at = str(t["at"])
        best = min(res["methods"][m]["regret"][at] for m in METHODS)
        cells = []
        for m in METHODS:
            regret = res["methods"][m]["regret"]
            cells.append(" / ".join(f"**{v:.3f}**" if k == at and v == best else f"{v:.3f}" for k, v in regret.items()))
        limit = "".join(f"{k} <= {v:.4g}, " for k, v in res["max_cost"].items())
        out.append(f"| {name} ({limit}{res['optimum']:.3f}; {res['wall_s'] / 60:.0f} min) | " + " | ".join(cells)
                   + f" | {t['dnas_over_best_baseline']:.2f} ({t['best_baseline']})"
                   + f" | {t['dnas_over_best_classic']:.2f} ({t['best_classic']}) |")
    return "\n".join(out) + "\n"


def plot(settings: dict[str, dict], path: Path) -> Path:
    """Mean regret against queries, one panel per setting, with a band of one standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    named = {k: v for k, v in settings.items() if "regret_curve" in v["methods"]["dnas"]}
    if not named:
        raise SystemExit("no stored curves to plot: run or --combine the settings first")
    cols = min(3, len(named))
    rows = -(-len(named) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(named):]:
        ax.set_visible(False)
    for ax, (name, res) in zip(axes.flat, named.items()):
        for method, row in res["methods"].items():
            mean, se = np.asarray(row["regret_curve"]), np.asarray(row["regret_curve_se"])
            x = np.arange(1, len(mean) + 1)
            (line,) = ax.plot(x, mean, label=method, lw=2.2 if method == "dnas" else 1.2)
            ax.fill_between(x, np.clip(mean - se, 0, None), mean + se, alpha=0.15, color=line.get_color())
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_ylim(bottom=0)
        metric = "" if res.get("metric", METRIC) == METRIC else f", {res['metric']}"
        ax.set_title(f"{name} ({res['seeds']} seeds{metric})", fontsize=10)
        ax.set_xlabel("queries")
        ax.grid(alpha=0.3, which="both")
    for row in axes:
        row[0].set_ylabel("mean regret (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--out", default="/tmp/raynas-quality", help="folder for the compare experiments")
    ap.add_argument("--name", default="quality", help="results file benchmarks/results/NAME.json")
    ap.add_argument("--markdown", action="store_true", help="print the stored results as Markdown and exit")
    ap.add_argument("--plot", action="store_true", help="draw the stored results (NAME.png) and exit")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="methods to run; the others' rows come from --reuse (each study depends only on "
                         "its method and seed, so an unchanged method's stored row stands)")
    ap.add_argument("--reuse", metavar="NAME",
                    help="stored results benchmarks/results/NAME.json whose rows stand in for methods not run")
    ap.add_argument("--combine", metavar="OUT1,OUT2,...",
                    help="run nothing: combine finished runs over disjoint seeds (their --out folders)")
    args = ap.parse_args()
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        sys.exit(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    path = RESULTS / f"{args.name}.json"
    done = json.loads(path.read_text()).get("settings", {}) if path.exists() else {}
    done = {k: done[k] for k in SETTINGS if k in done}
    if args.markdown:
        print(markdown(done))
        return
    if args.plot:
        plot(done, RESULTS / f"{args.name}.png")
        return
    out = Path(args.out)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if set(methods) - set(METHODS):
        sys.exit(f"unknown method(s) {sorted(set(methods) - set(METHODS))}; choose from {METHODS}")
    stored = {}
    if args.reuse:
        stored = json.loads((RESULTS / f"{args.reuse}.json").read_text())["settings"]
    for name in names:
        if args.combine:
            folders = [Path(d) / name for d in args.combine.split(",") if (Path(d) / name / "results.parquet").exists()]
            if not folders:
                print(f"{name}: no finished run under {args.combine}")
                continue
            res = summarize(name, folders, args.budget, stored.get(name))
        else:
            res = run_setting(name, args.seeds, args.budget, out, args.first_seed, methods, stored.get(name))
        if res is None:
            continue
        done[name] = res
        done = {k: done[k] for k in SETTINGS if k in done}  # a fixed order for tables and figure
        print_setting(name, res)
        write(args.name, {"methods": METHODS, "settings": done})
        plot(done, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
