"""The suite fails on a skip whose reason is not in tests/allowed_skips.txt (see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def session(pytester):
    pytester.makeconftest((HERE / "conftest.py").read_text())
    (pytester.path / "allowed_skips.txt").write_text((HERE / "allowed_skips.txt").read_text())
    return pytester


def test_an_unexpected_skip_fails_the_run(session):
    session.makepyfile(
        """
        import pytest

        def test_ok():
            pass

        def test_hidden():
            pytest.skip("the GPU driver is too old")
        """
    )
    result = session.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unexpected skips*", "*::test_hidden: the GPU driver is too old"])


def test_an_allowed_skip_passes(session):
    session.makepyfile(
        """
        import pytest

        def test_official_file():
            pytest.skip("shared benchmark data /x/nats_bench.csv is absent (see ../shared/data/README.md)")

        @pytest.mark.xfail(reason="known", strict=True)
        def test_expected_failure():
            assert False
        """
    )
    result = session.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1, xfailed=1)
