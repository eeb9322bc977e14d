"""cluster.yaml validates offline, and `compare` spreads studies over several Ray nodes.

The multi-node test runs on the committed NAS-Bench-201 excerpt (tests/data): no outside data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from raynas.runner._study import StudySpec, run_study
from raynas.testing.conformance import FAST_OPTIONS

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_is_a_valid_ray_cluster():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    validate_config(config)
    assert config["head_node_type"] in config["available_node_types"]
    assert any("raynas" in cmd for cmd in config["setup_commands"])
    # the dashboard stays on the head's loopback (reach it with `ray dashboard cluster.yaml`)
    assert "0.0.0.0" not in (ROOT / "cluster.yaml").read_text()
    assert any("--dashboard-host=127.0.0.1" in cmd for cmd in config["head_start_ray_commands"])


@pytest.mark.slow
def test_compare_spreads_studies_over_nodes(nb201_excerpt, tmp_path):
    script = textwrap.dedent(f"""
        import json, ray
        from ray.cluster_utils import Cluster
        from raynas.runner._compare import CompareConfig, compare
        cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1}})
        cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        from raynas.testing.conformance import FAST_OPTIONS
        # NAO trains its controller every few queries, so a study lasts seconds: long enough that
        # the studies run side by side (evolution's took milliseconds, and one reused actor on one
        # node could run all four before the other nodes' actors had started).
        cfg = CompareConfig(benchmark="nasbench201", data={nb201_excerpt.source!r}, methods=["nao"],
                            seeds=4, budget=100, metric="test_accuracy", options={{"nao": FAST_OPTIONS["nao"]}})
        compare(cfg, {str(tmp_path / "exp")!r}, progress=False)
        ray.shutdown()
        cluster.shutdown()
    """)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    studies = json.loads((tmp_path / "exp" / "studies.json").read_text())
    # the three one-CPU nodes run the four studies side by side
    assert len(studies) == 4 and all(s["error"] is None and s["queries"] == 100 for s in studies.values())
    assert len({s["node"] for s in studies.values()}) >= 2
    # every study kept to the excerpt's cells (a partial table) and matches an in-process run
    rows = pq.read_table(tmp_path / "exp" / "results.parquet").to_pylist()
    assert len(rows) == 4 * 100 and not any(r["error"] for r in rows)
    for seed in range(4):
        _, st = run_study(StudySpec("nao", seed, "test_accuracy", "max", 100, options=dict(FAST_OPTIONS["nao"])),
                          nb201_excerpt)
        assert [r["config"] for r in rows if r["seed"] == seed] == [r["config"] for r in st.rows]
