"""Shared fixtures: benchmark data and one Ray instance.

Fixtures that need ../shared/data (they skip when it is absent): ``nb201_csv``, ``macro_json``,
``nb201``, ``macro`` and ``shared_file(...)``, for tests of the complete official files. Fixtures
that need no outside file: ``graph`` (NAS-Bench-Graph, embedded in its PyPI package) and
``nb201_excerpt`` / ``macro_excerpt`` (partial tables cut from the official files, committed
under tests/data, see tests/data/README.md), plus ``ray_session``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # test_skip_policy runs small pytest sessions with this conftest

DATA = Path(__file__).resolve().parent / "data"
NB201_EXCERPT = DATA / "nb201_excerpt.csv"
MACRO_EXCERPT = DATA / "macro_excerpt.json"
SHARED = Path(os.environ.get("RAYNAS_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def shared_file(relpath: str) -> Path:
    """Path of a shared data file; skips the test with a clear reason when it is absent."""
    path = SHARED / relpath
    if not path.is_file():
        pytest.skip(f"shared benchmark data {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def nb201_csv() -> Path:
    return shared_file("nasbench201/nats_bench.csv")


@pytest.fixture(scope="session")
def macro_json() -> Path:
    return shared_file("nasbench_macro/nas-bench-macro_cifar10.json")


@pytest.fixture(scope="session")
def nb201(nb201_csv):
    from raynas import benchmarks

    return benchmarks.load("nasbench201", path=nb201_csv, dataset="cifar10")


@pytest.fixture(scope="session")
def macro(macro_json):
    from raynas import benchmarks

    return benchmarks.load("nasbench_macro", path=macro_json)


@pytest.fixture(scope="session")
def graph():
    """The complete NAS-Bench-Graph table for Cora (26,206 cells; val/test accuracy, latency, params)."""
    from raynas import benchmarks

    return benchmarks.load("nasbench_graph", dataset="cora")


@pytest.fixture(scope="session")
def nb201_excerpt():
    """NAS-Bench-201 CIFAR-10 from tests/data/nb201_excerpt.csv: a partial table (400 CSV rows)."""
    from raynas import benchmarks

    return benchmarks.load("nasbench201", path=NB201_EXCERPT, dataset="cifar10")


@pytest.fixture(scope="session")
def macro_excerpt():
    """NAS-Bench-Macro from tests/data/macro_excerpt.json: a partial table of 400 cells."""
    from raynas import benchmarks

    return benchmarks.load("nasbench_macro", path=MACRO_EXCERPT)


def kill_driver_then_its_ray(proc) -> None:
    """SIGKILL a driver started with ``start_new_session=True``, then its Ray processes (its
    process group), as a crash followed by a reboot would leave them: nothing is cleaned up."""
    import os
    import signal
    import time

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def one_thread_module():
    """``one_thread`` for a whole module of small networks: two threads on 2 busy cores mostly wait
    on each other, and trained weights depend on the thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """Build and count networks on one CPU thread: tiny batch-1 passes are slower with thread contention."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (starting Ray costs seconds)."""
    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------------------- skip policy
# A skip hides a test that did not run, so the suite fails on any skip whose reason is not
# listed in tests/allowed_skips.txt (one regular expression per line, '#' starts a comment).
ALLOWED_SKIPS = Path(__file__).resolve().parent / "allowed_skips.txt"
_unexpected_skips: list[str] = []


def _allowed_skip_patterns() -> list[re.Pattern[str]]:
    lines = (line.split("#", 1)[0].strip() for line in ALLOWED_SKIPS.read_text().splitlines())
    return [re.compile(line) for line in lines if line]


def _record_skip(report) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not any(p.search(reason) for p in _allowed_skip_patterns()):
        _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_runtest_logreport(report) -> None:
    _record_skip(report)


def pytest_collectreport(report) -> None:
    _record_skip(report)


def pytest_terminal_summary(terminalreporter) -> None:
    if _unexpected_skips:
        terminalreporter.section("unexpected skips (not in tests/allowed_skips.txt): the run fails")
        for line in _unexpected_skips:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus) -> None:
    if _unexpected_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
