"""The examples in monitoring's docstrings (every detector, the LRU, the config, metric labels) run as tests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import monitoring
import monitoring.detectors

MODULES = sorted(
    {f"monitoring.{m.name}" for m in pkgutil.iter_modules(monitoring.__path__) if not m.ispkg}
    | {f"monitoring.detectors.{m.name}" for m in pkgutil.iter_modules(monitoring.detectors.__path__)}
)
MUST_HAVE_EXAMPLES = {"monitoring.detectors.mean_shift", "monitoring.detectors.distribution_shift",
                      "monitoring.detectors.rate", "monitoring.detectors.residual", "monitoring.lru",
                      "monitoring.config", "monitoring.metrics"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (run doctest on it)"
    if name in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0, f"{name} should show its use in a docstring example"
