"""One OpenAPI document for everything reachable through the gateway.

The gateway's own document (OAuth endpoints) plus each service's ``/openapi.json``, fetched from the
service and cached: paths get the service's prefix (``/api/customer/accounts/{account_no}``), component
names the service's name (``customer__AccountOut``) so two services' ``Problem`` never collide, and every
operation the policy table does not open is left out (it is unreachable from outside). Each operation says
who may call it (``x-utilis-access``), and the security schemes (OAuth2 password / client credentials /
SMS code, bearer JWT) are declared once. A service that is down leaves its paths out and is named under
``x-utilis-unavailable`` instead of failing the whole document.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from typing import Any

import httpx

from gateway.domain.policy import PolicyTable

log = logging.getLogger(__name__)
_PARAM = re.compile(r"\{[^}/]+\}")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _rename_refs(node: Any, service: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/"):
                section, _, name = value.removeprefix("#/components/").partition("/")
                out[key] = f"#/components/{section}/{service}__{name}"
            else:
                out[key] = _rename_refs(value, service)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, service) for v in node]
    return node


def merge(
    own: dict[str, Any], services: dict[str, dict[str, Any]], policy: PolicyTable, *, token_url: str
) -> dict[str, Any]:
    doc = copy.deepcopy(own)
    doc["info"] = {
        **doc.get("info", {}),
        "title": "Utilis API (through the gateway)",
        "description": "Every route reachable through the gateway: the OAuth2 endpoints and each "
        "service's API under `/api/<service>`. `x-utilis-access` on each operation says who may call it.",
    }
    paths: dict[str, Any] = doc.setdefault("paths", {})
    components: dict[str, Any] = doc.setdefault("components", {})
    for service, document in sorted(services.items()):
        renamed = _rename_refs(document, service)
        for section, entries in renamed.get("components", {}).items():
            if section == "securitySchemes":
                continue
            target = components.setdefault(section, {})
            for name, value in entries.items():
                target[f"{service}__{name}"] = value
        for path, item in renamed.get("paths", {}).items():
            for method in METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                row = policy.match(service, method.upper(), _template_probe(path))
                if row is None or _shape(row.path) != _shape(path):
                    continue  # not opened by the policy table: unreachable from outside
                public = f"{row.template}" if row.limit == "callback" else f"/api/{service}{path}"
                target_item = paths.setdefault(public, {})
                if "parameters" in item:
                    target_item["parameters"] = item["parameters"]
                operation = dict(operation)
                operation["tags"] = [f"{service}: {t}" for t in operation.get("tags", [])] or [service]
                operation["x-utilis-access"] = row.access.describe()
                operation["security"] = [] if row.access.public else [{"bearer": []}, {"oauth2": []}]
                target_item[method] = operation
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from /oauth/token (ES256, verified against the JWKS).",
        },
        "oauth2": {
            "type": "oauth2",
            "description": "Residents sign in with an SMS code (grant urn:utilis:params:oauth:grant-type:"
            "sms-otp, see /oauth/sms-codes); staff with the password grant; partners with client "
            "credentials and per-client scopes.",
            "flows": {
                "password": {"tokenUrl": token_url, "scopes": {}},
                "clientCredentials": {"tokenUrl": token_url, "scopes": {}},
            },
        },
    }
    return doc


def _template_probe(template: str) -> str:
    """A concrete path that matches ``template`` (to look the template up in the policy table)."""
    return _PARAM.sub("x", template)


def _shape(template: str) -> str:
    return _PARAM.sub("{}", template)


class MergedOpenApi:
    def __init__(self, client: httpx.AsyncClient, base_urls: dict[str, str], cache_seconds: float) -> None:
        self.client = client
        self.base_urls = base_urls
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def documents(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        found, missing = {}, []
        now = time.monotonic()
        for service, base in sorted(self.base_urls.items()):
            cached = self._cache.get(service)
            if cached and now - cached[0] < self.cache_seconds:
                found[service] = cached[1]
                continue
            try:
                response = await self.client.get(base.rstrip("/") + "/openapi.json", timeout=5.0)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("openapi document unavailable", extra={"upstream": service, "error": str(exc)})
                if cached:
                    found[service] = cached[1]
                else:
                    missing.append(service)
                continue
            self._cache[service] = (now, document)
            found[service] = document
        return found, missing
