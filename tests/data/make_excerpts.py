"""Cut the small benchmark excerpts in this folder from the complete published files.

    python tests/data/make_excerpts.py

reads ``$RAYNAS_SHARED_DATA`` (default ``../shared/data`` next to the project root) and writes
``nb201_excerpt.csv`` and ``macro_excerpt.json`` here. Each excerpt holds the 30 best records
of its file plus 370 others drawn with ``numpy.random.default_rng(0)``, in the file's order.
It also writes ``nb101_excerpt.json`` (the first 20 records of ``nb101_1k.json``) and
``nb101_excerpt.tfrecord`` (every record of the first 8 cells of ``energy_4V9E.tfrecord``,
copied byte for byte with their framing and CRCs).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("RAYNAS_SHARED_DATA", HERE.parents[2] / "shared" / "data"))
N_BEST, N_RANDOM, SEED = 30, 370, 0


def pick(scores: np.ndarray) -> list[int]:
    """Indices of the N_BEST highest scores plus N_RANDOM random others, in ascending order."""
    best = np.argsort(-scores, kind="stable")[:N_BEST]
    rest = np.setdiff1d(np.arange(len(scores)), best)
    drawn = np.random.default_rng(SEED).choice(rest, size=N_RANDOM, replace=False)
    return sorted(int(i) for i in np.concatenate([best, drawn]))


def nb201() -> None:
    src = SHARED / "nasbench201" / "nats_bench.csv"
    lines = src.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    column = next(csv.reader([header])).index("CIFAR10TestAccuracy200Epochs")
    scores = np.array([float(next(csv.reader([r]))[column]) for r in rows])
    keep = pick(scores)
    (HERE / "nb201_excerpt.csv").write_text(header + "".join(rows[i] for i in keep))  # rows verbatim


def macro() -> None:
    src = SHARED / "nasbench_macro" / "nas-bench-macro_cifar10.json"
    data = json.loads(src.read_text())
    keys = list(data)
    keep = pick(np.array([data[k]["mean_acc"] for k in keys], dtype=float))
    (HERE / "macro_excerpt.json").write_text(json.dumps({keys[i]: data[keys[i]] for i in keep}))


def nb101() -> None:
    src = SHARED / "nasbench101" / "nb101_1k.json"
    data = json.loads(src.read_text())
    records = data["records"][:20]
    source = "the first 20 records of ../shared/data/nasbench101/nb101_1k.json; " + data["source"]
    (HERE / "nb101_excerpt.json").write_text(json.dumps({"source": source, "records": records}))
    raw = (SHARED / "nasbench101" / "energy_4V9E.tfrecord").read_bytes()
    frames, cells, offset = [], [], 0
    while offset < len(raw):  # framing: uint64 length, uint32 CRC, data, uint32 CRC
        length = int.from_bytes(raw[offset : offset + 8], "little")
        end = offset + 12 + length + 4
        cell = json.loads(raw[offset + 12 : offset + 12 + length])[0]
        if cell not in cells and len(cells) < 8:
            cells.append(cell)
        if cell in cells:
            frames.append(raw[offset:end])
        offset = end
    (HERE / "nb101_excerpt.tfrecord").write_bytes(b"".join(frames))


if __name__ == "__main__":
    nb201()
    macro()
    nb101()
