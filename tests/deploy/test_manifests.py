"""Containers and cluster manifests, checked statically (no Docker engine or cluster here).

Kubernetes objects are validated against the API schemas bundled in kubernetes-validate,
the Dockerfile by hadolint, and the compose file by the checks below.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from streams.core.rules.loader import load_ruleset
from streams.shell.settings import Settings
from tests.data import REPO

K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
KUBERNETES_VERSION = "1.33.0"


def manifests() -> list[tuple[Path, dict]]:  # type: ignore[type-arg]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = []
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            out.append((K8S / name, document))
    return out


def known_env() -> set[str]:
    names = {f"SENTINEL_{field.upper()}" for field in Settings.model_fields}
    return names | {"KAFKA_BOOTSTRAP_SERVERS"}


@pytest.mark.parametrize(("path", "document"), manifests(), ids=[f"{p.name}:{d['kind']}" for p, d in manifests()])
def test_kubernetes_objects_match_the_api_schemas(path: Path, document: dict) -> None:  # type: ignore[type-arg]
    if document["apiVersion"].startswith("monitoring.coreos.com/"):
        # A CRD of the Prometheus Operator: not in the core schemas; check what it must say.
        assert document["kind"] == "ServiceMonitor"
        [endpoint] = document["spec"]["endpoints"]
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        return
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_deployment_probes_resources_and_settings() -> None:
    deployment = next(d for _, d in manifests() if d["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    settings = next(d for _, d in manifests() if d["metadata"]["name"] == "deposit-sentinel-settings")
    unknown = (set(settings["data"]) | {e["name"] for e in container.get("env", [])}) - known_env()
    assert not unknown, f"settings the worker does not know: {unknown}"


def test_site_rules_configmap_loads_with_the_shipped_pack(tmp_path: Path) -> None:
    site = next(d for _, d in manifests() if d["metadata"]["name"] == "deposit-sentinel-site-rules")
    for name, text in site["data"].items():
        (tmp_path / name).write_text(text)
    ruleset = load_ruleset([REPO / "rules", tmp_path])
    assert "site_watch" in ruleset.lists


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"kafka", "sentinel-worker", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        depends = service.get("depends_on", {})
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name} depends on unknown {other}"
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
            unknown = set(service.get("environment", {})) - known_env()
            assert not unknown, f"{name}: settings the worker does not know: {unknown}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"
