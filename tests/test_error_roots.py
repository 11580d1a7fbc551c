"""Every exception class of `filters`, `models`, `monitoring` and `streams` descends from its package root, keeping
its builtin base."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import filters
import models
import monitoring
import streams
from filters.errors import FiltersError
from filters.spec import SpecError, resolve_spec
from models.errors import ModelsError
from monitoring.errors import MonitoringError
from streams.errors import StreamsError


def _exception_classes(package, root_name: str) -> list[type]:
    found = []
    for info in pkgutil.walk_packages(package.__path__, f"{root_name}."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == info.name and not obj.__name__.startswith("_"):
                found.append(obj)
    return found


@pytest.mark.parametrize(("package", "name", "root"), [(filters, "filters", FiltersError),
                                                        (models, "models", ModelsError),
                                                        (monitoring, "monitoring", MonitoringError),
                                                        (streams, "streams", StreamsError)])
def test_every_exception_has_the_package_root(package, name, root):
    classes = _exception_classes(package, name)
    assert len(classes) >= 3
    strays = [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, root)]
    assert strays == []


def test_root_catches_and_builtin_base_still_catches():
    for catch in (FiltersError, ValueError):
        with pytest.raises(catch, match="unknown filter 'nope'; known filters"):
            resolve_spec("nope")
    assert issubclass(SpecError, ValueError)
