"""The distribution ships every package: each directory with an ``__init__.py`` is in the wheel.

``pyproject.toml`` lists the packages explicitly (``searchers/`` and ``trainables/`` install as
``raynas.searchers`` and ``raynas.trainables`` through ``[tool.setuptools] package-dir``), and
setuptools does not recurse into a listed package: a subpackage missing from the list is
silently left out of a non-editable install. The expected packages are derived from the
directories on disk, so a new subpackage fails these tests until it is listed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _setuptools_config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]


def _package_dirs() -> dict[str, Path]:
    """Every package on disk, by import name, under the roots that ``package-dir`` maps."""
    found: dict[str, Path] = {}
    for name, folder in _setuptools_config()["package-dir"].items():
        root = ROOT / folder
        for init in sorted(root.rglob("__init__.py")):
            rel = init.parent.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            found[".".join((name, *rel.parts))] = init.parent
    return found


def test_every_package_on_disk_is_listed():
    listed = set(_setuptools_config()["packages"])
    on_disk = set(_package_dirs())
    assert on_disk, "no package found under the package-dir roots"
    missing = sorted(on_disk - listed)
    assert not missing, (
        f"add {missing} to [tool.setuptools] packages in pyproject.toml, or they are left out "
        "of the wheel"
    )
    # setuptools refuses to build when a listed package has no directory
    absent = sorted(listed - on_disk)
    assert not absent, f"[tool.setuptools] packages lists {absent}, which have no __init__.py"


def test_wheel_contains_every_module(tmp_path):
    """Build the wheel (offline, from a copy of the sources) and look inside it."""
    pytest.importorskip("setuptools")
    config = _setuptools_config()
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in set(config["package-dir"].values()):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    out = tmp_path / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    cmd += ["--disable-pip-version-check", "-q", "-w", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = out.glob("raynas-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    expected = {
        "/".join((*name.split("."), path.relative_to(folder).as_posix()))
        for name, folder in _package_dirs().items()
        for path in folder.glob("*.py")
    }
    assert "raynas/searchers/dnas/__init__.py" in expected
    missing = sorted(expected - shipped)
    assert not missing, f"the wheel lacks {missing}"
