"""Every registered searcher through the one conformance suite (raynas.testing.conformance)."""

from __future__ import annotations

import pytest

from raynas.searchers import searcher_names
from raynas.testing.conformance import SearcherConformance, SearcherFactory


class TestRegisteredSearchers(SearcherConformance):
    factories = [SearcherFactory(name) for name in searcher_names()]

    @pytest.fixture
    def conformance_ray(self, ray_session):
        return ray_session


def test_every_registered_searcher_is_under_test():
    assert {f.method for f in TestRegisteredSearchers.factories} == set(searcher_names())
    assert len(searcher_names()) >= 8
