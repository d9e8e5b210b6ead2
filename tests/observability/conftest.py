"""Checks of the alert rules and Grafana dashboards (helm/utilis/files/{alerts,dashboards}): they call the
functions of scripts/observability_check.py, the same ones `make check-observability` runs. Everything is
offline but test_exported_metrics.py, which scrapes the processes the test set-up started."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def oc() -> ModuleType:
    """scripts/observability_check.py"""
    return _load("observability_check")


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    """scripts/dashboards.py"""
    return _load("dashboards")


@pytest.fixture(scope="session")
def deploy_check() -> ModuleType:
    """scripts/deploy_check.py (renders the chart offline)"""
    return _load("deploy_check")
