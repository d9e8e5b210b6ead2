"""The front door: every ``/api/<service>/...`` request and every provider callback goes through here.

In order: the path must be unambiguous; the policy table must have a row for the route (deny by default);
a token-bearing route needs a valid access token (verified exactly as the services verify it) whose
holder the row admits, a public route (callbacks) a caller from the provider's networks; the caller must
be within its rate limits and its token not revoked; then the request goes to the service with the
request and correlation ids, the ``X-Forwarded-*`` headers and without hop-by-hop headers, and the
service's answer comes back the same way. Every refusal is a problem+json with a stable code.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from functools import cached_property

from fastapi import Request, Response

from gateway.adapters.metrics import (
    AUTH_FAILURES,
    CHANNEL_REQUESTS,
    RATE_LIMITED,
    UPSTREAM_DURATION,
    UPSTREAM_REQUESTS,
)
from gateway.adapters.ratelimit import Limit, RateLimiter
from gateway.adapters.upstreams import CircuitOpen, UpstreamFailed, Upstreams
from gateway.domain import forwarding
from gateway.domain.policy import POLICY, PolicyTable, RoutePolicy
from gateway.service_layer.channel_usage import ChannelUsageRecorder
from gateway.settings import Settings
from utilis_shared.auth import Principal, TokenVerifier
from utilis_shared.context import correlation_id_var, request_id_var
from utilis_shared.errors import Forbidden, NotFound, Problem, Unauthorized

log = logging.getLogger(__name__)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class RateLimited(Problem):
    status, code = 429, "rate_limited"


class UpstreamProblem(Problem):
    status, code = 502, "bad_gateway"


@dataclass
class Proxy:
    settings: Settings
    verifier: TokenVerifier
    limiter: RateLimiter
    upstreams: Upstreams
    usage: ChannelUsageRecorder | None = None
    policy: PolicyTable = POLICY

    @cached_property
    def _callback_networks(self) -> dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
        return {
            provider: [ipaddress.ip_network(n, strict=False) for n in networks]
            for provider, networks in self.settings.callback_networks.items()
        }

    async def api(self, request: Request, service: str, path: str) -> Response:
        return await self._handle(request, service, "/" + path, prefix=f"/api/{service}")

    async def callback(self, request: Request, path: str) -> Response:
        return await self._handle(request, "payment", "/callbacks/" + path, prefix="")

    async def _handle(self, request: Request, service: str, path: str, *, prefix: str) -> Response:
        try:
            forwarding.check_path(request.scope.get("raw_path") or b"", path)
        except forwarding.BadPath as exc:
            raise Problem(f"The path is not accepted: {exc}.", status=400, code="bad_path") from exc
        method = request.method
        route = self.policy.match(service, method, path)
        if route is None:
            if service not in self.policy.services():
                raise NotFound(f"No service is published at /api/{service}.", code="unknown_service")
            AUTH_FAILURES.labels("no_policy").inc()
            raise Forbidden("This route is not open through the gateway.", code="no_policy")
        # Metrics and the access log name the route by its template (bounded), not the catch-all.
        request.scope["utilis.route"] = route.template
        client_ip = request.client.host if request.client else "unknown"
        principal = None
        if route.access.public:
            self._check_callback_origin(path, client_ip)
            limits = [self._limit("callback_ip", client_ip, self.settings.rate_limit_callback_ip_per_minute)]
        else:
            principal = await self._authenticate(request)
            if not route.access.admits(principal):
                AUTH_FAILURES.labels("forbidden").inc()
                raise Forbidden("Your role or scopes do not allow this operation.", code="forbidden")
            limits = self._limits_for(principal, client_ip)
        verdict = await self.limiter.check(limits, token_id=principal.token_id if principal else None)
        if verdict.revoked:
            AUTH_FAILURES.labels("revoked").inc()
            raise Unauthorized(
                "The access token has been revoked.",
                code="token_revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not verdict.allowed:
            RATE_LIMITED.labels(verdict.limit or "unknown").inc()
            raise RateLimited(
                "Too many requests; try again later.",
                headers={"Retry-After": str(verdict.retry_after_seconds)},
                retry_after=verdict.retry_after_seconds,
            )
        if not self.upstreams.knows(service):
            raise Problem(f"The {service} service is not available.", status=503, code="service_unavailable")
        if principal is not None:
            CHANNEL_REQUESTS.labels(principal.channel or "unknown").inc()
            if self.usage is not None:
                self.usage.count(principal.channel, service)
        return await self._forward(request, route, service, path, prefix, client_ip)

    async def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            AUTH_FAILURES.labels("missing_token").inc()
            raise Unauthorized(
                "An access token is required.", code="unauthorized", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            principal = await self.verifier.verify(token.strip())  # remembered for a while once verified
        except Unauthorized as exc:
            AUTH_FAILURES.labels(exc.code).inc()
            if exc.status == 401:  # RFC 6750 §3.1
                exc.headers = {**(exc.headers or {}), "WWW-Authenticate": 'Bearer error="invalid_token"'}
            raise
        request.state.principal = principal  # the access log names the subject (never the token)
        return principal

    def _check_callback_origin(self, path: str, client_ip: str) -> None:
        provider = path.split("/")[2]
        networks = self._callback_networks.get(provider)
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            address = None
        if not networks or address is None or not any(address in n for n in networks):
            AUTH_FAILURES.labels("ip_not_allowed").inc()
            log.warning(
                "callback refused: caller not in the provider's networks", extra={"provider": provider}
            )
            raise Forbidden(
                "Callbacks are accepted only from the provider's networks.", code="ip_not_allowed"
            )

    def _limit(self, name: str, key: str, per_minute: int) -> Limit:
        return Limit(name=name, key=key, requests=per_minute, period_seconds=60.0)

    def _limits_for(self, principal: Principal, client_ip: str) -> list[Limit]:
        s = self.settings
        limits = [self._limit("ip", client_ip, s.rate_limit_ip_per_minute)]
        if principal.kind == "partner":
            limits.append(self._limit("partner", principal.subject, s.rate_limit_partner_per_minute))
        else:
            # Assisted service counts against the staff member, not the resident they help.
            who = principal.actor.subject if principal.actor else principal.subject
            limits.append(self._limit("user", f"{principal.kind}:{who}", s.rate_limit_user_per_minute))
        return limits

    async def _forward(
        self, request: Request, route: RoutePolicy, service: str, path: str, prefix: str, client_ip: str
    ) -> Response:
        incoming = request.scope["headers"]
        headers = forwarding.request_headers(
            incoming,
            client_ip=client_ip,
            scheme=request.scope.get("scheme", "http"),
            host=_header(incoming, b"host"),
            prefix=prefix,
            request_id=request_id_var.get(),
            correlation_id=correlation_id_var.get(),
            drop_authorization=route.access.public,
        )
        body = await request.body()
        started = time.perf_counter()
        status = "error"
        try:
            answer = await self.upstreams.send(
                service,
                request.method,
                path,
                query=request.scope.get("query_string", b""),
                headers=headers,
                body=body,
                retry_safe=forwarding.may_retry(request.method, incoming),
            )
            status = str(answer.status_code)
        except CircuitOpen as exc:
            status = "circuit_open"
            raise Problem(
                f"The {service} service is failing; the gateway is not calling it for a moment.",
                status=503,
                code="upstream_unavailable",
                headers={"Retry-After": str(max(1, round(exc.retry_after)))},
            ) from exc
        except UpstreamFailed as exc:
            status = exc.reason
            if exc.reason == "timeout":
                raise UpstreamProblem(
                    f"The {service} service did not answer in time.", status=504, code="upstream_timeout"
                ) from exc
            raise UpstreamProblem(f"The {service} service could not be reached.") from exc
        finally:
            UPSTREAM_REQUESTS.labels(service, route.template, request.method, status).inc()
            UPSTREAM_DURATION.labels(service, route.template).observe(time.perf_counter() - started)
        response = Response(content=answer.content, status_code=answer.status_code)
        response.raw_headers.extend(forwarding.response_headers(answer.headers))
        return response
