"""Test helpers for raynas and for people who write their own searchers.

:mod:`raynas.testing.conformance` holds the conformance suite every searcher passes. It needs
pytest (``pip install 'raynas[test]'``).
"""
