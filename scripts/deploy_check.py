"""Offline checks of what deploys the platform: the Helm chart, the plain manifests, the Dockerfile.

    uv run python scripts/deploy_check.py lint          helm lint --strict, default/dev/prod values
    uv run python scripts/deploy_check.py render [--values dev|prod|default] [--out DIR]
    uv run python scripts/deploy_check.py validate      every rendered object and every file of deploy/k8s
                                                        against the Kubernetes 1.31 JSON schemas (strict)
    uv run python scripts/deploy_check.py render-k8s    regenerate deploy/k8s from the chart
    uv run python scripts/deploy_check.py check-k8s     deploy/k8s is what render-k8s would write
    uv run python scripts/deploy_check.py docker        the Dockerfile's structure, the console scripts
    uv run python scripts/deploy_check.py all           all of the above checks (make check-deploy)

Everything runs without a cluster, a helm binary or a Docker engine: the chart is linted and rendered by
Helm's own Go SDK (PyPI helm-python-sdk), objects are checked by kubernetes-validate's schemas. Kinds that
are not in the Kubernetes schemas (custom resources) are checked against the small schemas in CRD_SCHEMAS
below; an object of any other kind fails. tests/deploy calls the same functions.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import functools
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser and emitter (PyYAML's wheels ship it): the pure-Python ones take seconds on these files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _load_all(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc]


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (CSafeLoader: the safe loader, in C)


REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "utilis"
K8S_DIR = REPO / "deploy" / "k8s"
PLATFORM_FILE = REPO / "deploy" / "platform.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"

KUBE_VERSION = "1.31.0"
RELEASE = "utilis"
NAMESPACE = "utilis"
# Values files per variant, on top of the chart's values.yaml. deploy/k8s/base is the default variant;
# each overlay is the difference between its variant and the base, in the namespace named here.
VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "dev": ("values-dev.yaml",),
    "prod": ("values-prod.yaml",),
}
OVERLAY_NAMESPACES = {"dev": "utilis-dev", "prod": "utilis"}
GENERATED_NOTE = (
    "# Generated from helm/utilis by `make deploy-manifests` (scripts/deploy_check.py). Do not edit.\n"
)


# ---------------------------------------------------------------------------------------------------
# Values, lint, render


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of a values file over another: maps merge, anything else replaces, null deletes."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def variant_values(variant: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The user values of a variant (its values files merged, then ``extra``), without values.yaml."""
    values: dict[str, Any] = {}
    for name in VARIANTS[variant]:
        values = merge_values(values, _load((CHART / name).read_text(encoding="utf-8")) or {})
    return merge_values(values, extra or {})


def chart_values(variant: str = "default") -> dict[str, Any]:
    """values.yaml with the variant's files merged over it: what the templates see."""
    defaults = _load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return merge_values(defaults, variant_values(variant))


def _helm():
    import helm_python

    helm_python.disable_logging()
    return helm_python


def lint(variant: str = "default", extra: dict[str, Any] | None = None) -> list[str]:
    """``helm lint --strict`` (warnings count) with the variant's values: the problems, [] when clean.
    Lint runs the values schema and the templates but forgives ``fail``: render() catches those."""
    report = _helm().lint(CHART, variant_values(variant, extra), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [
        f"{m['path']}: {m['error'].strip()}" for m in report.get("messages", []) if m.get("severity", 0) >= 2
    ]
    return problems or [e.strip() for e in report.get("errors", [])]


@dataclass(frozen=True)
class Manifest:
    source: str  # the template it came from (or the file of deploy/k8s)
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.obj.get("kind", "?")

    @property
    def name(self) -> str:
        return (self.obj.get("metadata") or {}).get("name", "?")

    @property
    def label(self) -> str:
        return f"{self.source}: {self.kind}/{self.name}"


def render(variant: str = "default", extra: dict[str, Any] | None = None) -> list[Manifest]:
    """The chart rendered offline (``helm template``) with the variant's values: every object, in order."""
    helm = _helm()
    files = helm.Chart.load(CHART).render(
        variant_values(variant, extra), name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    manifests = []
    for source in sorted(files):
        if not source.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for obj in _load_all(files[source]):
            if obj:
                manifests.append(Manifest(source.removeprefix(f"{CHART.name}/"), obj))
    return manifests


@functools.cache
def rendered(variant: str) -> tuple[Manifest, ...]:
    """render(variant), once per process (the objects are shared: copy before changing one)."""
    return tuple(render(variant))


# ---------------------------------------------------------------------------------------------------
# Validation

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _crd(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {}, "kind": {}, "metadata": _METADATA, "spec": spec},
    }


_ENDPOINT = {
    "type": "object",
    "properties": {
        "port": {"type": "string"},
        "targetPort": {"type": ["string", "integer"]},
        "path": {"type": "string", "pattern": "^/"},
        "interval": {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$"},
        "scrapeTimeout": {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$"},
        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
    },
}
# Custom resources are not in the Kubernetes schemas: these small schemas (the fields the chart uses, from
# the operators' CRDs) check them instead. Any other kind the Kubernetes schemas do not know fails.
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    # Strimzi's Topic Operator (kafka.strimzi.io/v1beta2 KafkaTopic).
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): _crd(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["partitions", "replicas"],
            "properties": {
                "topicName": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "integer", "boolean"]},
                },
            },
        }
    ),
    # The Prometheus Operator (monitoring.coreos.com/v1): structure only; promtool checks the rules.
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _crd(
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object"},
                "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
            },
        }
    ),
    ("monitoring.coreos.com/v1", "PodMonitor"): _crd(
        {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": {"type": "object"},
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
            },
        }
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _crd(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string"},
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string"},
                                        "keep_firing_for": {"type": "string"},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        }
    ),
}


@functools.cache
def _k8s_validator(api_version: str, kind: str):
    """kubernetes-validate's strict schema of a kind, compiled once (its validate() re-reads the schema and
    every definition for each object). None when the Kubernetes schemas do not have the kind."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(KUBE_VERSION)][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", KUBE_VERSION)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", KUBE_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _crd_validator(api_version: str, kind: str):
    import jsonschema

    schema = CRD_SCHEMAS.get((api_version, kind))
    return jsonschema.Draft202012Validator(schema) if schema else None


def validate_object(obj: dict[str, Any]) -> list[str]:
    """Problems of one object against the Kubernetes 1.31 schemas (strict: unknown fields fail) or, for a
    custom resource, against CRD_SCHEMAS."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    if not api_version or not kind:
        return ["no apiVersion or kind"]
    validator = _k8s_validator(api_version, kind) or _crd_validator(api_version, kind)
    if validator is None:
        return [f"no schema for {api_version} {kind} (not a Kubernetes kind; add a schema to CRD_SCHEMAS)"]
    problems = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(map(str, error.absolute_path)) or "(top)"
        problems.append(f"{where}: {error.message}")
    return problems


def validate(manifests: Iterable[Manifest]) -> list[str]:
    return [f"{m.label}: {p}" for m in manifests for p in validate_object(m.obj)]


# ---------------------------------------------------------------------------------------------------
# deploy/k8s: a kustomize base (the default values) and overlays (dev, prod) generated from the chart

_KIND_ORDER = [
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Job",
    "KafkaTopic",
]
_HELM_ONLY_LABELS = ("helm.sh/chart",)


def plain(obj: dict[str, Any]) -> dict[str, Any]:
    """A rendered object as a plain manifest: no Helm labels or hook annotations, managed-by kustomize."""
    obj = copy.deepcopy(obj)

    def fix(meta: dict[str, Any] | None) -> None:
        if not meta:
            return
        labels = meta.get("labels") or {}
        for label in _HELM_ONLY_LABELS:
            labels.pop(label, None)
        if labels.get("app.kubernetes.io/managed-by") == "Helm":
            labels["app.kubernetes.io/managed-by"] = "kustomize"
        annotations = meta.get("annotations")
        if annotations is not None:
            for key in [k for k in annotations if k.startswith("helm.sh/")]:
                del annotations[key]
            if not annotations:
                del meta["annotations"]

    fix(obj.get("metadata"))
    fix(((obj.get("spec") or {}).get("template") or {}).get("metadata"))
    return obj


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _sort_key(obj: dict[str, Any]) -> tuple[int, str]:
    kind = obj["kind"]
    order = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return order, f"{kind}/{obj['metadata']['name']}"


class _Dumper(_BaseDumper):
    pass


def _str(dumper: Any, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objs: Iterable[Any]) -> str:
    return yaml.dump_all(list(objs), Dumper=_Dumper, sort_keys=False, width=4096, explicit_start=True)


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(old: Any, new: Any, path: list[str | int] | None = None) -> list[dict[str, Any]]:
    """RFC 6902 operations that turn ``old`` into ``new``: maps key by key, lists of equal length item by
    item, anything else replaced whole."""
    path = path or []
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": _pointer([*path, key])})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": _pointer([*path, key]), "value": value})
            else:
                ops.extend(json_patch(old[key], value, [*path, key]))
        return ops
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            op for i, (a, b) in enumerate(zip(old, new, strict=True)) for op in json_patch(a, b, [*path, i])
        ]
    if old == new and type(old) is type(new):
        return []
    return [{"op": "replace", "path": _pointer(path), "value": new}]


def apply_json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply the operations json_patch makes (add, remove, replace) to a copy of ``doc``."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        if not parts:
            doc = copy.deepcopy(op["value"])
            continue
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last: str | int = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if op["op"] == "remove":
            del parent[last]
        elif op["op"] in ("add", "replace"):
            parent[last] = copy.deepcopy(op["value"])
        else:
            raise ValueError(f"unsupported operation {op['op']}")
    return doc


def _group_file(obj: dict[str, Any], services: set[str]) -> str:
    labels = obj["metadata"].get("labels") or {}
    name = labels.get("app.kubernetes.io/name", "")
    if name in services:
        return f"{name}.yaml"
    return f"{labels.get('app.kubernetes.io/component') or obj['kind'].lower()}.yaml"


def _gvk(obj: dict[str, Any]) -> dict[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    target = {"version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    return {"group": group, **target} if group else target


def _patch_file(obj: dict[str, Any]) -> str:
    return f"patches/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def k8s_files() -> dict[str, str]:
    """Every file of deploy/k8s (relative path -> content) as the chart makes it now (README.md aside)."""
    services = set(chart_values()["services"])
    base = sorted((plain(m.obj) for m in rendered("default")), key=_sort_key)
    files: dict[str, str] = {}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for obj in base:
        grouped.setdefault(_group_file(obj, services), []).append(obj)
    for name, objs in sorted(grouped.items()):
        files[f"base/{name}"] = GENERATED_NOTE + dump(objs)
    files["base/kustomization.yaml"] = GENERATED_NOTE + yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(grouped),
        },
        sort_keys=False,
    )
    by_key = {_key(o): o for o in base}
    for overlay, namespace in OVERLAY_NAMESPACES.items():
        target = sorted((plain(m.obj) for m in rendered(overlay)), key=_sort_key)
        target_keys = {_key(o) for o in target}
        added = [o for o in target if _key(o) not in by_key]
        removed = [o for o in base if _key(o) not in target_keys]
        patched = [(o, ops) for o in target if _key(o) in by_key and (ops := json_patch(by_key[_key(o)], o))]
        resources = ["../../base"]
        if added:
            files[f"overlays/{overlay}/added.yaml"] = GENERATED_NOTE + dump(added)
            resources.append("added.yaml")
        patches: list[dict[str, Any]] = []
        for obj, ops in patched:
            files[f"overlays/{overlay}/{_patch_file(obj)}"] = GENERATED_NOTE + yaml.dump(
                ops, Dumper=_Dumper, sort_keys=False, width=4096
            )
            patches.append({"path": _patch_file(obj), "target": _gvk(obj)})
        for obj in removed:
            patches.append(
                {
                    "patch": yaml.safe_dump(
                        {
                            "$patch": "delete",
                            "apiVersion": obj["apiVersion"],
                            "kind": obj["kind"],
                            "metadata": {"name": obj["metadata"]["name"]},
                        },
                        sort_keys=False,
                    ),
                    "target": _gvk(obj),
                }
            )
        kustomization: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": resources,
        }
        if patches:
            kustomization["patches"] = patches
        files[f"overlays/{overlay}/kustomization.yaml"] = GENERATED_NOTE + yaml.dump(
            kustomization, Dumper=_Dumper, sort_keys=False, width=4096
        )
    return files


def committed_k8s_files() -> dict[str, str]:
    return {
        str(p.relative_to(K8S_DIR)): p.read_text(encoding="utf-8")
        for p in sorted(K8S_DIR.rglob("*.yaml"))
        if p.is_file()
    }


def check_k8s() -> list[str]:
    """deploy/k8s against what the chart makes now: one message (with a diff) per file out of step."""
    want, have = k8s_files(), committed_k8s_files()
    problems = []
    for path in sorted(set(want) | set(have)):
        if path not in have:
            problems.append(f"deploy/k8s/{path}: missing")
        elif path not in want:
            problems.append(f"deploy/k8s/{path}: not generated by the chart any more")
        elif want[path] != have[path]:
            diff = difflib.unified_diff(
                have[path].splitlines(keepends=True),
                want[path].splitlines(keepends=True),
                f"deploy/k8s/{path} (committed)",
                f"deploy/k8s/{path} (from the chart)",
                n=2,
            )
            lines = list(diff)
            shown = "".join(lines[:60]) + (
                f"... ({len(lines) - 60} more diff lines)\n" if len(lines) > 60 else ""
            )
            problems.append(f"deploy/k8s/{path}: out of step with the chart\n{shown}")
    if problems:
        problems.append("regenerate with `make deploy-manifests` and commit deploy/k8s")
    return problems


def write_k8s() -> list[str]:
    """Write deploy/k8s from the chart (and delete generated files it no longer makes)."""
    want = k8s_files()
    for path in committed_k8s_files():
        if path not in want:
            (K8S_DIR / path).unlink()
    for path, content in want.items():
        target = K8S_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")
    for folder in sorted(K8S_DIR.rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return sorted(want)


def k8s_manifests(files: dict[str, str] | None = None) -> list[Manifest]:
    """The objects of deploy/k8s's base and overlays' added resources (the patches are not objects)."""
    files = committed_k8s_files() if files is None else files
    out = []
    for path, content in sorted(files.items()):
        if path.endswith("kustomization.yaml") or "/patches/" in path:
            continue
        out.extend(Manifest(f"deploy/k8s/{path}", obj) for obj in _load_all(content) if obj)
    return out


def build_overlay(overlay: str, files: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """What ``kustomize build deploy/k8s/overlays/<overlay>`` makes, for the kinds of changes render-k8s
    writes (added resources, JSON 6902 patches, deletions; namespace left out), computed here so the check
    needs no kustomize binary."""
    files = committed_k8s_files() if files is None else files
    base = [
        obj
        for path, c in sorted(files.items())
        if path.startswith("base/") and not path.endswith("kustomization.yaml")
        for obj in _load_all(c)
        if obj
    ]
    kustomization = _load(files[f"overlays/{overlay}/kustomization.yaml"])
    objs = {_key(o): o for o in base}
    for resource in kustomization["resources"]:
        if resource != "../../base":
            for obj in _load_all(files[f"overlays/{overlay}/{resource}"]):
                if obj:
                    objs[_key(obj)] = obj
    for patch in kustomization.get("patches", []):
        key = (patch["target"]["kind"], patch["target"]["name"])
        if "path" in patch:
            objs[key] = apply_json_patch(objs[key], _load(files[f"overlays/{overlay}/{patch['path']}"]))
        elif _load(patch["patch"]).get("$patch") == "delete":
            del objs[key]
    return sorted(objs.values(), key=_sort_key)


def kustomize_build(overlay: str) -> list[dict[str, Any]] | None:
    """``kubectl kustomize`` of an overlay when kubectl is installed (namespace removed), else None."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objs = []
    for obj in _load_all(out):
        if obj:
            obj["metadata"].pop("namespace", None)
            objs.append(obj)
    return sorted(objs, key=_sort_key)


def overlay_problems(overlay: str) -> list[str]:
    """The committed overlay, built, is the chart rendered with the overlay's values."""
    want = sorted((plain(m.obj) for m in rendered(overlay)), key=_sort_key)
    got = build_overlay(overlay)
    if got == want:
        return []
    diff = difflib.unified_diff(
        dump(want).splitlines(True), dump(got).splitlines(True), "chart", "deploy/k8s"
    )
    return [
        f"deploy/k8s/overlays/{overlay} builds to something else than the chart:\n" + "".join(list(diff)[:60])
    ]


# ---------------------------------------------------------------------------------------------------
# The Dockerfile


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions (continuations joined, comments and parser directives dropped)."""
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


def _stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|clang|rustc|cargo|git|curl|wget)\b")


def dockerfile_problems(text: str | None = None, *, scripts: bool = True) -> list[str]:
    """The Dockerfile's structure (no Docker engine here to build it; ``text``: another Dockerfile's), the
    build context, the entry point, and (``scripts``) every platform service's console script."""
    problems: list[str] = []
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8") if text is None else text)
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1] if "=" in i.args else ""
        for i in instructions
        if i.keyword == "ARG"
    }
    stages = _stages(instructions)
    if len(stages) < 2:
        problems.append("Dockerfile: not multi-stage (a build stage and a runtime stage)")
        return problems
    build, runtime = stages[0], stages[-1]

    def base_image(stage: list[Instruction]) -> str:
        image = stage[0].args.split()[0]
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)

    for stage in (build, runtime):
        image = base_image(stage)
        if not re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image):
            problems.append(f"Dockerfile:{stage[0].line}: base {image!r} is not a slim Python 3.11 image")
    if " AS " not in build[0].args.upper():
        problems.append("Dockerfile: the build stage has no name")
    if not any(i.keyword == "ARG" and i.args.split("=")[0] == "SERVICE" for i in build):
        problems.append("Dockerfile: the build stage takes no SERVICE build argument")
    syncs = [i for i in build if i.keyword == "RUN" and "uv sync" in i.args]
    for sync in syncs:
        if "--frozen" not in sync.args or "--no-dev" not in sync.args:
            problems.append(
                f"Dockerfile:{sync.line}: `uv sync` without --frozen --no-dev (the lock, as it is)"
            )
    if not any("--package" in i.args and "--no-install-workspace" not in i.args for i in syncs):
        problems.append("Dockerfile: no `uv sync --frozen --no-dev --package ...` installing the service")
    copies = [i for i in runtime if i.keyword == "COPY"]
    if not any("--from=build" in i.args for i in copies):
        problems.append("Dockerfile: the runtime stage copies nothing from the build stage")
    for ins in runtime:
        if ins.keyword == "RUN":
            installed = " ".join(re.findall(r"apt-get install[^;&]*", ins.args))
            if BUILD_TOOLS.search(installed):
                problems.append(
                    f"Dockerfile:{ins.line}: build tools installed in the runtime stage: {installed}"
                )
            if re.search(r"\b(pip|uv) (install|sync)\b", ins.args):
                problems.append(f"Dockerfile:{ins.line}: packages installed in the runtime stage")
    users = [i for i in runtime if i.keyword == "USER"]
    if not users:
        problems.append("Dockerfile: the runtime stage has no USER (it would run as root)")
    elif not re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1].args) or users[-1].args.split(":")[0] != "10001":
        problems.append(
            f"Dockerfile:{users[-1].line}: USER {users[-1].args!r} is not the numeric non-root 10001"
        )
    if not any(i.keyword == "STOPSIGNAL" and i.args == "SIGTERM" for i in runtime):
        problems.append("Dockerfile: no STOPSIGNAL SIGTERM in the runtime stage")
    entrypoints = [i for i in runtime if i.keyword == "ENTRYPOINT"]
    if not entrypoints or not entrypoints[-1].args.startswith("["):
        problems.append("Dockerfile: no exec-form ENTRYPOINT in the runtime stage")
    elif "utilis-entrypoint" not in entrypoints[-1].args:
        problems.append("Dockerfile: the ENTRYPOINT does not run docker/entrypoint.sh")
    if not any("docker/entrypoint.sh" in i.args for i in copies):
        problems.append("Dockerfile: docker/entrypoint.sh is not copied into the image")
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").split() if DOCKERIGNORE.exists() else []
    for needed in (".git", ".venv", ".local", "**/tests"):
        if needed not in ignored:
            problems.append(f".dockerignore: {needed} is not excluded from the build context")
    if ENTRYPOINT.exists() and not ENTRYPOINT.stat().st_mode & 0o111:
        problems.append("docker/entrypoint.sh is not executable")
    if scripts:
        problems.extend(console_script_problems())
    return problems


def _member_dir(service: str) -> Path:
    """Where the Dockerfile finds a service's workspace member."""
    return REPO / "gateway" if service == "gateway" else REPO / "services" / service


def console_script_problems() -> list[str]:
    """Each service of deploy/platform.yaml is a workspace member `utilis-<service>` whose console script
    is the service's name (the image's entry point runs /app/.venv/bin/$SERVICE) with a command for each
    of its process kinds, `migrate`, and its setup/demo commands."""
    problems = []
    platform = _load(PLATFORM_FILE.read_text(encoding="utf-8"))
    for service, spec in platform["services"].items():
        member = _member_dir(service)
        pyproject = member / "pyproject.toml"
        if not pyproject.exists():
            problems.append(f"{service}: no workspace member at {member.relative_to(REPO)}")
            continue
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        if project["name"] != f"utilis-{service}":
            problems.append(
                f"{service}: package {project['name']!r}, the Dockerfile installs utilis-{service}"
            )
        if spec["command"] != service:
            problems.append(f"{service}: console script {spec['command']!r} is not the service's name")
        target = project.get("scripts", {}).get(spec["command"])
        if not target:
            problems.append(
                f"{service}: {pyproject.relative_to(REPO)} declares no console script {spec['command']}"
            )
            continue
        module = target.partition(":")[0]
        commands = _cli_commands(module)
        wanted = {
            *spec["processes"],
            "migrate",
            *(spec.get("setup") or [])[:1],
            *(spec.get("demo") or [])[:1],
        }
        for command in sorted(wanted - commands):
            problems.append(f"{service}: `{spec['command']} {command}` is not a command of {module}")
    return problems


def _cli_commands(module: str) -> set[str]:
    import importlib

    app = importlib.import_module(module).app
    return {
        command.name or command.callback.__name__.replace("_", "-")
        for command in app.registered_commands
        if command.callback is not None
    }


def hadolint() -> list[str] | None:
    """hadolint's findings on the Dockerfile, or None when hadolint is not installed."""
    binary = shutil.which("hadolint") or (
        str(Path(sys.executable).parent / "hadolint")
        if (Path(sys.executable).parent / "hadolint").exists()
        else None
    )
    if not binary:
        return None
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    return [line for line in result.stdout.splitlines() if line.strip()] if result.returncode else []


# ---------------------------------------------------------------------------------------------------
# The command line


def _report(title: str, problems: list[str], started: float) -> bool:
    took = time.monotonic() - started
    if problems:
        print(f"[deploy] {title}: {len(problems)} problem(s) ({took:.1f}s)")
        for problem in problems:
            print("  " + problem.replace("\n", "\n    "))
        return False
    print(f"[deploy] {title}: ok ({took:.1f}s)")
    return True


def cmd_lint(_: argparse.Namespace) -> bool:
    ok = True
    for variant in VARIANTS:
        started = time.monotonic()
        ok &= _report(f"helm lint --strict ({variant} values)", lint(variant), started)
    return ok


def _render_problems(variant: str) -> tuple[list[Manifest], list[str]]:
    try:
        return list(rendered(variant)), []
    except Exception as exc:  # HelmRenderError, HelmValuesError: the template's own message
        return [], [f"{type(exc).__name__}: {exc}"]


def cmd_render(args: argparse.Namespace) -> bool:
    ok = True
    for variant in [args.values] if args.values else list(VARIANTS):
        started = time.monotonic()
        manifests, problems = _render_problems(variant)
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{variant}.yaml").write_text(dump(m.obj for m in manifests), encoding="utf-8")
            kinds: dict[str, int] = {}
            for m in manifests:
                kinds[m.kind] = kinds.get(m.kind, 0) + 1
            print(f"[deploy] {out / (variant + '.yaml')}: {len(manifests)} objects ({json.dumps(kinds)})")
        elif args.values:
            sys.stdout.write(dump(m.obj for m in manifests))
        ok &= _report(f"helm template ({variant} values)", problems, started)
    return ok


def cmd_validate(_: argparse.Namespace) -> bool:
    ok = True
    for variant in VARIANTS:
        started = time.monotonic()
        manifests, problems = _render_problems(variant)
        problems += validate(manifests)
        ok &= _report(
            f"kubernetes-validate --strict -k {KUBE_VERSION}, chart with {variant} values "
            f"({len(manifests)} objects)",
            problems,
            started,
        )
    started = time.monotonic()
    plain_manifests = k8s_manifests()
    problems = validate(plain_manifests)
    for overlay in OVERLAY_NAMESPACES:
        problems += validate(Manifest(f"deploy/k8s/overlays/{overlay}", o) for o in build_overlay(overlay))
    ok &= _report(
        f"kubernetes-validate --strict -k {KUBE_VERSION}, deploy/k8s "
        f"({len(plain_manifests)} objects + the overlays built)",
        problems,
        started,
    )
    return ok


def cmd_render_k8s(_: argparse.Namespace) -> bool:
    started = time.monotonic()
    written = write_k8s()
    return _report(f"deploy/k8s written ({len(written)} files)", [], started)


def cmd_check_k8s(_: argparse.Namespace) -> bool:
    started = time.monotonic()
    problems = check_k8s()
    if not problems:
        for overlay in OVERLAY_NAMESPACES:
            problems += overlay_problems(overlay)
            built = kustomize_build(overlay)
            if built is not None and built != build_overlay(overlay):
                problems.append(f"kubectl kustomize deploy/k8s/overlays/{overlay} differs from the chart")
    return _report("deploy/k8s in step with the chart", problems, started)


def cmd_docker(_: argparse.Namespace) -> bool:
    started = time.monotonic()
    problems = dockerfile_problems()
    lint_findings = hadolint()
    if lint_findings:
        problems += [f"hadolint: {f}" for f in lint_findings]
    suffix = "" if lint_findings is not None else " (hadolint not installed: structure checks only)"
    return _report(f"docker/Dockerfile{suffix}", problems, started)


def cmd_all(args: argparse.Namespace) -> bool:
    results = [cmd_lint(args), cmd_validate(args), cmd_check_k8s(args), cmd_docker(args)]
    return all(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lint", help="helm lint --strict with the default, dev and prod values").set_defaults(
        func=cmd_lint
    )
    render_parser = sub.add_parser("render", help="helm template (stdout with --values, files with --out)")
    render_parser.add_argument("--values", choices=list(VARIANTS), help="one variant, printed to stdout")
    render_parser.add_argument("--out", help="write <variant>.yaml files into this folder")
    render_parser.set_defaults(func=cmd_render)
    sub.add_parser("validate", help="every object (chart and deploy/k8s) against the schemas").set_defaults(
        func=cmd_validate
    )
    sub.add_parser("render-k8s", help="regenerate deploy/k8s from the chart").set_defaults(
        func=cmd_render_k8s
    )
    sub.add_parser("check-k8s", help="deploy/k8s is in step with the chart").set_defaults(func=cmd_check_k8s)
    sub.add_parser("docker", help="the Dockerfile's structure and the console scripts").set_defaults(
        func=cmd_docker
    )
    sub.add_parser("all", help="lint, validate, check-k8s, docker (make check-deploy)").set_defaults(
        func=cmd_all
    )
    args = parser.parse_args(argv)
    return 0 if args.func(args) else 1


if __name__ == "__main__":
    sys.exit(main())
