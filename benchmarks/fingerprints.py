"""Reproducibility check: a hash of every row of a sample of the recorded quality studies.

Each study of ``bench_quality.py`` depends only on its setting, method and seed, so the
figures in ``benchmarks/results/`` stay valid across a refactor exactly when these studies
give the same rows. The script runs each study in-process (the same ``run_study`` that
``raynas compare`` runs inside its Tune trials) and hashes, per study, the sequence of (query,
suggestion, simulated time, cell key, config, objective value, error).

Usage:
    python benchmarks/fingerprints.py --write       # record benchmarks/results/fingerprints.json
    python benchmarks/fingerprints.py --check       # rerun and compare; exit 1 on any difference
    python benchmarks/fingerprints.py --check --seeds 1 --settings graph-cora   # a quick subset
    python benchmarks/fingerprints.py --write --methods dnas   # re-record one method changed on purpose

``--check`` compares the studies it reruns with the recorded ones of the same name. The
recorded sample (56 studies of 150 queries): all eight methods on the five quality settings,
seeds 0-1 on NB201 CIFAR-10 (plus DNAS's two ablation switches) and seed 0 elsewhere, written by
the code of commit 3ff2942; DNAS's studies were re-recorded (seeds 0-1 everywhere) after its
rebuild as Algorithm 1 on 2026-12-02. Rerunning all of it takes about 40 minutes on one core.

The hashes of the neural searchers (NAO, SemiNAS, DNAS) hold for one kind of CPU: torch picks
its float kernels by instruction set, and a different rounding can change a decoded cell. On an
AVX-512 machine (2026-12-02) the code that had matched all 36 rechecked studies on 2026-11-25
gave other rows for NAO on Macro seed 0 and SemiNAS on NB201 CIFAR-10 seeds 0-1 and Macro seed 0;
the other methods do not use torch and match everywhere. Compare ``--check`` results from the
machine kind that wrote the file (the DNAS entries: that AVX-512 machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, shared  # noqa: E402
from bench_quality import METRIC, SETTINGS  # noqa: E402

METHODS = ["dnas", "seminas", "nao", "evolution", "tpe", "random", "reinforce", "local"]
ABLATIONS = {"dnas-no-dense": ("dnas", {"dense_sampling": False}),
             "dnas-no-kl": ("dnas", {"disentangle": False})}
PATH = RESULTS / "fingerprints.json"


def study_hash(rows: list[dict]) -> str:
    fields = ("query", "suggestion", "time", "key", "config", METRIC, "error")
    text = json.dumps([[r.get(f) for f in fields] for r in rows], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run(seeds: int, budget: int, settings: list[str], methods: list[str] | None = None) -> dict[str, str]:
    from raynas.benchmarks import load
    from raynas.runner._study import StudySpec, run_study

    out: dict[str, str] = {}
    for name in settings:
        spec = SETTINGS[name]
        if spec.get("build"):
            continue  # a table built from shared data (bench_quality.py), not in the recorded sample
        data = None
        if spec["data"] is not None:
            path = shared(spec["data"])
            if path is None:
                continue
            data = str(path)
        bench = load(spec["benchmark"], path=data, dataset=spec["dataset"])
        jobs = [(m, m, {}) for m in METHODS]
        if name == "nb201-cifar10":
            jobs += [(label, m, opts) for label, (m, opts) in ABLATIONS.items()]
        if methods:
            jobs = [job for job in jobs if job[1] in methods]
        for label, method, options in jobs:
            for seed in range(seeds):
                t0 = time.perf_counter()
                study = StudySpec(method, seed, METRIC, "max", budget, max_cost=dict(spec.get("max_cost", {})),
                                  options=dict(options))
                _, st = run_study(study, bench)
                key = f"{name}/{label}/seed{seed}"
                out[key] = study_hash(st.rows)
                print(f"{key}: {out[key]} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="record the fingerprints")
    mode.add_argument("--check", action="store_true", help="rerun and compare with the recorded ones")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--file", type=Path, default=PATH, help="where the fingerprints are kept")
    ap.add_argument("--methods", default=None,
                    help="comma-separated methods to run (with --write: replace only their recorded studies)")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    got = run(args.seeds, args.budget, args.settings.split(","), methods)
    if args.write:
        args.file.parent.mkdir(parents=True, exist_ok=True)
        if methods and args.file.exists():  # a method whose results changed on purpose: re-record it alone
            got = {**json.loads(args.file.read_text())["studies"], **got}
        args.file.write_text(json.dumps({"budget": args.budget, "studies": got}, indent=2) + "\n")
        print(f"wrote {args.file} ({len(got)} studies)")
        return
    want = json.loads(args.file.read_text())["studies"]
    differ = sorted(k for k in got if k in want and got[k] != want[k])
    missing = sorted(set(want) - set(got))
    print(f"{len(got) - len(differ)} of {len(got)} studies identical; {len(missing)} recorded ones not rerun")
    for k in differ:
        print(f"DIFFERS: {k}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
