"""deploy/k8s: the kustomize base and overlays are what the chart makes now, they build to the chart's
objects with the overlays' values, and every object validates."""

from __future__ import annotations

import shutil

import pytest

from .conftest import dc


def test_k8s_manifests_are_in_step_with_the_chart():
    assert dc.check_k8s() == []


def test_the_check_names_a_file_out_of_step_with_a_diff(monkeypatch):
    files = dc.committed_k8s_files()
    files["base/payment.yaml"] = files["base/payment.yaml"].replace(
        "containerPort: 8103", "containerPort: 8199"
    )
    assert dc.k8s_files()["base/payment.yaml"] != files["base/payment.yaml"]
    monkeypatch.setattr(dc, "committed_k8s_files", lambda: files)
    problems = dc.check_k8s()
    assert problems[0].startswith("deploy/k8s/base/payment.yaml: out of step with the chart")
    diff = problems[0].splitlines()
    assert any(line.startswith("-") and line.strip("- ") == "containerPort: 8199" for line in diff)
    assert any(line.startswith("+") and line.strip("+ ") == "containerPort: 8103" for line in diff)
    assert problems[-1] == "regenerate with `make deploy-manifests` and commit deploy/k8s"


@pytest.mark.parametrize("overlay", list(dc.OVERLAY_NAMESPACES))
def test_each_overlay_builds_to_the_chart_with_its_values(overlay):
    assert dc.overlay_problems(overlay) == []


@pytest.mark.parametrize("overlay", list(dc.OVERLAY_NAMESPACES))
def test_kustomize_builds_each_overlay_the_same_way(overlay):
    assert shutil.which("kubectl"), "kubectl (its built-in kustomize) is needed to cross-check the overlays"
    assert dc.kustomize_build(overlay) == dc.build_overlay(overlay)


def test_plain_manifests_validate():
    manifests = dc.k8s_manifests()
    assert len(manifests) > 40
    assert dc.validate(manifests) == []
    for overlay in dc.OVERLAY_NAMESPACES:
        assert dc.validate(dc.Manifest(overlay, o) for o in dc.build_overlay(overlay)) == []


def test_json_patch_round_trip():
    old = {"a": {"b/c": 1, "d": [1, 2]}, "e": "x", "gone": True}
    new = {"a": {"b/c": 2, "d": [1, 3], "new": {"x": 1}}, "e": ["y"]}
    ops = dc.json_patch(old, new)
    assert dc.apply_json_patch(old, ops) == new
    assert {"op": "replace", "path": "/a/b~1c", "value": 2} in ops
    assert dc.json_patch(new, new) == []
