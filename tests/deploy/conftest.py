"""Offline checks of the deployment artefacts (docker/, helm/utilis, deploy/k8s): no cluster, no helm
binary, no Docker engine, no running stack. They call the functions of scripts/deploy_check.py, the same
ones `make check-deploy` runs; the chart is rendered once per values variant per session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load_deploy_check() -> ModuleType:
    name = "deploy_check"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "deploy_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


dc = _load_deploy_check()
VARIANTS = list(dc.VARIANTS)


@pytest.fixture(scope="session")
def deploy_check() -> ModuleType:
    return dc


@pytest.fixture(scope="session")
def platform() -> dict[str, Any]:
    return yaml.safe_load(dc.PLATFORM_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session", params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def objects(variant) -> list[dict[str, Any]]:
    """The chart's objects rendered with the variant's values (cached by deploy_check.rendered)."""
    return [m.obj for m in dc.rendered(variant)]
