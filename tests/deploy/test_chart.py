"""The chart: strict lint, renders with every values file, every object valid, and what each object must
be (hardened pods, safe rollouts, one Deployment per process of deploy/platform.yaml, the same topics)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import VARIANTS, dc

SECURITY = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
}


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def env_names(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_lints_strict(variant):
    assert dc.lint(variant) == []


def test_lint_refuses_a_misspelled_value():
    problems = dc.lint("default", {"services": {"payment": {"processes": {"api": {"replicacount": 3}}}}})
    assert any("replicacount" in p for p in problems), problems


def test_every_object_validates(variant, objects):
    assert len(objects) > 40
    assert dc.validate(dc.rendered(variant)) == []


def test_validation_refuses_unknown_fields_and_kinds(objects):
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    assert any("replica" in p for p in dc.validate_object(broken))
    topic = next(o for o in objects if o["kind"] == "KafkaTopic")
    assert any(
        "partition" in p for p in dc.validate_object({**topic, "spec": {**topic["spec"], "partition": 1}})
    )
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert dc.validate_object(unknown) == [
        "no schema for example.com/v1 Widget (not a Kubernetes kind; add a schema to CRD_SCHEMAS)"
    ]


def test_values_list_the_services_of_platform_yaml(platform):
    values = dc.chart_values()
    enabled = {name: svc for name, svc in values["services"].items() if svc and svc["enabled"]}
    assert set(enabled) == set(platform["services"])
    for name, spec in platform["services"].items():
        ports = {kind: p["port"] for kind, p in enabled[name]["processes"].items()}
        assert ports == spec["processes"], f"{name}: processes and ports differ from deploy/platform.yaml"
        assert enabled[name].get("route", name) == spec.get("route", name)


def test_topics_are_the_platform_yaml_topics(platform, objects):
    assert dc.chart_values()["kafka"]["topics"] == platform["topics"]
    topics = {o["spec"]["topicName"]: o["spec"] for o in objects if o["kind"] == "KafkaTopic"}
    assert {name: (t["partitions"], t["config"]["retention.ms"]) for name, t in topics.items()} == {
        t["name"]: (t["partitions"], t["retention_ms"]) for t in platform["topics"]
    }


def test_every_platform_process_has_a_deployment(platform, objects):
    deployments = of_kind(objects, "Deployment")
    expected = {
        f"{name}-{kind}": (name, kind, port)
        for name, spec in platform["services"].items()
        for kind, port in spec["processes"].items()
    }
    assert set(deployments) == set(expected)
    for deployment_name, (service, kind, port) in expected.items():
        spec = deployments[deployment_name]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["image"].split("/")[-1].startswith(f"{service}:")
        assert container["args"][0] == kind
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        port_var = "UTILIS_HTTP_PORT" if kind == "api" else "UTILIS_MANAGEMENT_PORT"
        assert env_names(container)[port_var]["value"] == str(port)
        assert spec["serviceAccountName"] == service
        assert container["envFrom"] == [{"configMapRef": {"name": f"{service}-config"}}]


def _check_pod(name: str, pod: dict[str, Any]) -> None:
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True, name
    assert security["runAsUser"] == 10001, name
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert pod["automountServiceAccountToken"] is False, name
    assert {"name": "tmp", "emptyDir": {"sizeLimit": pod["volumes"][0]["emptyDir"]["sizeLimit"]}} in pod[
        "volumes"
    ]
    for container in pod["containers"]:
        csc = container["securityContext"]
        assert {k: csc.get(k) for k in SECURITY} == SECURITY, name
        assert csc["capabilities"] == {"drop": ["ALL"]}, name
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
        assert container["resources"]["requests"], name


def test_every_deployment_is_hardened_and_rolls_out_safely(variant, objects):
    deployments = of_kind(objects, "Deployment")
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler").values()}
    assert deployments
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        _check_pod(name, pod)
        assert spec["revisionHistoryLimit"] == 10, name
        (container,) = pod["containers"]
        assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}, name
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        if container["args"][0] == "relay":
            # The one exception to maxUnavailable 0: two relays side by side could publish a key's events
            # out of order, so the old one stops before the new one starts; never more than one.
            assert spec["strategy"] == {"type": "Recreate"}, name
            assert spec["replicas"] == 1 and name not in hpas, name
        else:
            assert spec["strategy"]["type"] == "RollingUpdate", name
            assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        # An HPA replaces the replica count (else every apply would reset what the HPA chose).
        assert ("replicas" in spec) == (name not in hpas), name


def test_the_relay_cannot_be_scaled():
    for change in ({"replicaCount": 2}, {"autoscaling": {"enabled": True}}):
        with pytest.raises(Exception, match="one replica, no autoscaling"):
            dc.render("default", {"services": {"payment": {"processes": {"relay": change}}}})


def test_dev_runs_one_of_each_and_prod_autoscales():
    dev = [m.obj for m in dc.rendered("dev")]
    assert {d["spec"]["replicas"] for d in of_kind(dev, "Deployment").values()} == {1}
    assert not of_kind(dev, "HorizontalPodAutoscaler")
    prod = [m.obj for m in dc.rendered("prod")]
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]
        for h in of_kind(prod, "HorizontalPodAutoscaler").values()
    }
    apis = [name for name in of_kind(prod, "Deployment") if name.endswith("-api")]
    assert apis and all(hpas[name]["minReplicas"] >= 3 for name in apis)
    assert all(name in of_kind(prod, "PodDisruptionBudget") for name in apis)


def test_images_are_tagged_with_the_release_never_latest(objects):
    version = dc.chart_values()  # values.yaml leaves the tag to the chart's appVersion
    assert version["global"]["image"]["tag"] == ""
    app_version = dc._load((dc.CHART / "Chart.yaml").read_text())["appVersion"]
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            for container in o["spec"]["template"]["spec"]["containers"]:
                assert container["image"].endswith(f":{app_version}"), container["image"]
    with pytest.raises(Exception, match="mutable"):
        dc.render("default", {"global": {"image": {"tag": "latest"}}})


def test_migrations_run_as_pre_install_and_pre_upgrade_hooks(platform, objects):
    jobs = of_kind(objects, "Job")
    assert set(jobs) == {f"{name}-migrate" for name in platform["services"]}
    for name, job in jobs.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade", name
        assert int(annotations["helm.sh/hook-weight"]) == 0, name
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"], name
        pod = job["spec"]["template"]["spec"]
        _check_pod(name, pod)
        assert pod["restartPolicy"] == "Never"
        assert pod["containers"][0]["args"] == ["migrate"]
        # Hooks run before the release's ConfigMap and ServiceAccount exist: nothing of them is used.
        assert "envFrom" not in pod["containers"][0]
        service_account = of_kind(objects, "ServiceAccount")[pod["serviceAccountName"]]
        assert service_account["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(service_account["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0


def test_secrets_are_references_only(objects):
    values = dc.chart_values()
    secret_keys = {*values["secrets"]["keys"], values["secrets"]["redisKey"]}
    assert not of_kind(objects, "Secret")
    for config in of_kind(objects, "ConfigMap").values():
        assert not secret_keys & set(config.get("data", {})), config["metadata"]["name"]
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            for container in o["spec"]["template"]["spec"]["containers"]:
                for name, env in env_names(container).items():
                    if name in secret_keys:
                        assert "secretKeyRef" in env["valueFrom"], (o["metadata"]["name"], name)


def test_secret_files_and_shared_volumes_are_mounted_into_the_services_pods():
    """payment's providers file (a Secret, read-only) and its withholding exchange directory (a claim,
    read-write) reach every process of the service, and no other service's pods."""
    payment = {
        "secretFiles": [{"secretName": "payment-providers", "mountPath": "/etc/utilis/providers"}],
        "sharedVolumes": [{"claimName": "withholding-exchange", "mountPath": "/var/lib/utilis/withholding"}],
    }
    objects = [m.obj for m in dc.render("default", {"services": {"payment": payment}})]
    assert dc.validate(tuple(dc.render("default", {"services": {"payment": payment}}))) == []
    deployments = of_kind(objects, "Deployment")
    scheduler = next(d for name, d in deployments.items() if name.endswith("payment-scheduler"))
    pod = scheduler["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["secret-file-0"]["secret"]["secretName"] == "payment-providers"
    assert volumes["shared-volume-0"]["persistentVolumeClaim"]["claimName"] == "withholding-exchange"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["secret-file-0"] == {
        "name": "secret-file-0",
        "mountPath": "/etc/utilis/providers",
        "readOnly": True,
    }
    assert mounts["shared-volume-0"]["mountPath"] == "/var/lib/utilis/withholding"
    assert not mounts["shared-volume-0"].get("readOnly")
    billing = next(d for name, d in deployments.items() if name.endswith("metering-and-billing-api"))
    assert not {v["name"] for v in billing["spec"]["template"]["spec"]["volumes"]} & set(volumes) - {"tmp"}


def test_settings_names_are_the_services_real_settings(platform, objects):
    """Every UTILIS_* variable the chart sets is a field of the service's Settings (a typo would be ignored
    by pydantic-settings and the service would run on its default)."""
    import importlib

    settings_modules = {
        "customer": "customer.settings",
        "gateway": "gateway.settings",
        "metering-and-billing": "billing.settings",
        "payment": "payment.settings",
    }
    assert set(settings_modules) == set(platform["services"]), "a new service: add its settings module here"
    for service, module in settings_modules.items():
        fields = {f"UTILIS_{name.upper()}" for name in importlib.import_module(module).Settings.model_fields}
        config = of_kind(objects, "ConfigMap")[f"{service}-config"]["data"]
        set_here = set(config)
        for o in objects:
            if (
                o["kind"] in ("Deployment", "Job")
                and o["metadata"]["labels"]["app.kubernetes.io/name"] == service
            ):
                for container in o["spec"]["template"]["spec"]["containers"]:
                    set_here |= set(env_names(container))
        assert set_here - fields == set(), f"{service}: not settings of {module}"


def test_gateway_routes_to_every_api(platform, objects):
    import json

    upstreams = json.loads(of_kind(objects, "ConfigMap")["gateway-config"]["data"]["UTILIS_UPSTREAMS"])
    services = of_kind(objects, "Service")
    expected = {
        spec.get("route", name): f"http://{name}:{spec['processes']['api']}"
        for name, spec in platform["services"].items()
        if name != "gateway" and "api" in spec["processes"]
    }
    assert upstreams == expected
    for url in upstreams.values():
        host, port = url.removeprefix("http://").split(":")
        assert services[host]["spec"]["ports"][0]["port"] == int(port)
    jwks = of_kind(objects, "ConfigMap")["payment-config"]["data"]["UTILIS_JWKS_URL"]
    assert (
        jwks == f"http://gateway:{platform['services']['gateway']['processes']['api']}/.well-known/jwks.json"
    )


def test_network_policies_deny_by_default_and_allow_what_each_needs(platform, objects):
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["utilis-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    assert deny["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "utilis",
        "app.kubernetes.io/instance": "utilis",
    }
    assert {p["port"] for p in policies["utilis-allow-dns"]["spec"]["egress"][0]["ports"]} == {53}
    assert policies["utilis-allow-prometheus"]["spec"]["ingress"][0]["ports"] == [
        {"port": "http", "protocol": "TCP"}
    ]
    gateway_api = {
        "app.kubernetes.io/name": "gateway",
        "app.kubernetes.io/instance": "utilis",
        "app.kubernetes.io/component": "api",
    }
    for name in platform["services"]:
        egress_ports = {
            p["port"] for rule in policies[f"{name}-datastores"]["spec"]["egress"] for p in rule["ports"]
        }
        assert 5432 in egress_ports and 9092 in egress_ports, name
        if name != "gateway":
            api = policies[f"{name}-api"]["spec"]
            assert api["ingress"] == [
                {
                    "from": [{"podSelector": {"matchLabels": gateway_api}}],
                    "ports": [{"port": "http", "protocol": "TCP"}],
                }
            ], name
            assert api["egress"][0]["to"] == [{"podSelector": {"matchLabels": gateway_api}}], name
    gateway_egress = {rule["ports"][0]["port"] for rule in policies["gateway-api"]["spec"]["egress"]}
    assert gateway_egress == {
        s["processes"]["api"] for n, s in platform["services"].items() if n != "gateway"
    }


def test_observability_values_are_defined_for_its_templates():
    observability = dc.chart_values()["observability"]
    assert observability["enabled"] is True
    assert observability["grafanaDashboards"]["labels"] == {"grafana_dashboard": "1"}
    assert observability["serviceMonitor"]["interval"] == "30s"
    assert observability["prometheusRule"]["enabled"] is True


def test_the_cached_validator_agrees_with_kubernetes_validate(objects):
    """deploy_check compiles kubernetes-validate's strict schemas once per kind; its verdicts are the
    library's own (`kubernetes-validate --strict -k 1.31.0`)."""
    import kubernetes_validate

    for kind in ("Deployment", "NetworkPolicy", "Job"):
        good = next(o for o in objects if o["kind"] == kind)
        kubernetes_validate.validate(good, dc.KUBE_VERSION, strict=True)
        assert dc.validate_object(good) == []
        bad = {**good, "spec": {**good["spec"], "replicaz": 1}}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, dc.KUBE_VERSION, strict=True)
        assert dc.validate_object(bad)
