"""The gateway API process: ``gateway api`` (uvicorn, app factory ``gateway.entrypoints.http:create``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from gateway import __version__
from gateway.adapters.crypto import SecretHasher
from gateway.adapters.ratelimit import RateLimiter
from gateway.adapters.sms import DevelopmentSmsSender
from gateway.adapters.upstreams import UpstreamConfig, Upstreams
from gateway.api import proxy as proxy_api
from gateway.api import reports as report_api
from gateway.api import residents as resident_api
from gateway.api.routes import NO_STORE, router
from gateway.domain.oauth import OAuthError
from gateway.service_layer.channel_usage import ChannelUsageRecorder
from gateway.service_layer.keys import KeyRing, OwnJwks
from gateway.service_layer.openapi import MergedOpenApi
from gateway.service_layer.proxy import Proxy
from gateway.service_layer.sms_codes import SmsCodes
from gateway.service_layer.tokens import TokenService
from gateway.settings import Settings, get_settings
from utilis_shared.auth import TokenVerifier
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.health import HealthCheck, database_check, redis_check
from utilis_shared.logging import configure_logging
from utilis_shared.pii import PiiCipher
from utilis_shared.web import create_app

DESCRIPTION = """
The Utilis OAuth 2.0 authorization server: access tokens (JWT, ES256, `kid`, short-lived) for staff
(password grant, argon2id, lockout), residents (phone + SMS one-time code from `POST /oauth/sms-codes`,
grant `urn:utilis:params:oauth:grant-type:sms-otp`), partner systems (client credentials with per-client
scopes), and rotated refresh tokens with reuse detection; revocation (RFC 7009), introspection
(RFC 7662), JWKS with key rotation, metadata (RFC 8414). Every service verifies these tokens itself
against the JWKS.

OAuth endpoints take `application/x-www-form-urlencoded` bodies and answer errors as
`{"error", "error_description"}` (RFC 6749 §5.2) with `Cache-Control: no-store`.
"""


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.hasher = SecretHasher()
        cipher = PiiCipher.from_settings(settings)
        app.state.keys = KeyRing(app.state.session_factory, cipher, settings)
        app.state.tokens = TokenService(settings, app.state.keys)
        # Bearer tokens on the gateway's own API and on proxied routes: verified like every service does.
        app.state.token_verifier = TokenVerifier(
            OwnJwks(app.state.keys),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
        )
        app.state.redis = Redis.from_url(settings.redis_url)
        app.state.sms_sender = DevelopmentSmsSender(development=settings.is_development)
        app.state.sms_codes = SmsCodes(app.state.redis, cipher, app.state.sms_sender, settings)
        app.state.limiter = RateLimiter(app.state.redis, settings.redis_prefix)
        app.state.upstreams = Upstreams(
            settings.upstreams,
            UpstreamConfig(
                connect_timeout=settings.upstream_connect_timeout_seconds,
                read_timeout=settings.upstream_read_timeout_seconds,
                max_connections=settings.upstream_max_connections,
                attempts=settings.upstream_attempts,
                breaker_failures=settings.breaker_failures,
                breaker_reset_seconds=settings.breaker_reset_seconds,
            ),
        )
        app.state.channel_usage = ChannelUsageRecorder(
            app.state.session_factory, flush_seconds=settings.channel_usage_flush_seconds
        )
        app.state.proxy = Proxy(
            settings,
            app.state.token_verifier,
            app.state.limiter,
            app.state.upstreams,
            app.state.channel_usage,
        )
        app.state.merged_openapi = MergedOpenApi(
            app.state.upstreams.client, settings.upstreams, settings.openapi_cache_seconds
        )
        app.state.channel_usage.start()
        try:
            yield
        finally:
            await app.state.channel_usage.stop()
            await app.state.upstreams.aclose()
            await app.state.redis.aclose()
            await engine.dispose()

    def readiness(app: FastAPI) -> list[HealthCheck]:
        return [
            HealthCheck("database", database_check(app.state.engine)),
            HealthCheck("redis", redis_check(app.state.redis)),
        ]

    app = create_app(
        settings,
        title="Utilis gateway",
        description=DESCRIPTION,
        version=__version__,
        # The proxy's routes first (most requests are proxied; they never match /api/gateway/...).
        routers=[proxy_api.router, router, resident_api.router, report_api.router],
        lifespan=lifespan,
        readiness=readiness,
    )

    proxy_api.install_front_door(app)

    @app.exception_handler(OAuthError)
    async def _oauth_error(_: Request, exc: OAuthError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers={**exc.headers, **NO_STORE})

    return app
