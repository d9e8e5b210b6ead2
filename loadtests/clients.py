"""HTTP sessions for simulated people, each from a network address of its own.

Residents at the peak reach the gateway from many addresses, and the gateway limits per address (API
requests per minute, SMS codes per hour). A load generator on one machine would send everything from
127.0.0.1 and measure those limits instead of the platform, so each resident session (and each agent, and
the bank's API client) binds its connections to an address of its own in 127.0.0.0/8, as the end-to-end
tests do. Providers' notifications keep coming from 127.0.0.1: the gateway admits callbacks only from the
providers' networks (its allow-list).

geventhttpclient has no source-address option, so the client pool wraps the socket factory of each
connection pool it creates (``ConnectionPool._create_tcp_socket``, geventhttpclient 2.x).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from geventhttpclient.client import HTTPClient, HTTPClientPool
from locust.contrib.fasthttp import FastHttpSession

_counter = itertools.count(os.getpid() * 7919)


def next_address() -> str:
    """A loopback address not handed out recently by this process (127.20.0.1 to 127.219.255.254)."""
    n = next(_counter) % (200 * 256 * 254)
    return f"127.{20 + n // (256 * 254)}.{n // 254 % 256}.{1 + n % 254}"


class BoundClientPool(HTTPClientPool):
    """An ``HTTPClientPool`` whose connections leave from ``source_ip``."""

    def __init__(self, source_ip: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.source_ip = source_ip

    def get_client(self, url: Any) -> HTTPClient:
        client = super().get_client(url)
        pool = client._connection_pool
        if not getattr(pool, "bound_to", None):
            create = pool._create_tcp_socket

            def bound_socket(family: int, socktype: int, protocol: int) -> Any:
                sock = create(family, socktype, protocol)
                sock.bind((self.source_ip, 0))
                return sock

            pool._create_tcp_socket = bound_socket
            pool.bound_to = self.source_ip
        return client


def session_from(user: Any, source_ip: str | None, *, concurrency: int = 1) -> FastHttpSession:
    """A Locust ``FastHttpSession`` for ``user`` (its host, timeouts and request events) whose connections
    leave from ``source_ip`` (None: the default address, 127.0.0.1)."""
    kwargs = {
        "connection_timeout": user.connection_timeout,
        "network_timeout": user.network_timeout,
        "concurrency": concurrency,
    }
    pool = BoundClientPool(source_ip, **kwargs) if source_ip else None
    return FastHttpSession(
        base_url=user.host,
        request_event=user.environment.events.request,
        user=user,
        insecure=True,
        client_pool=pool,
        max_retries=user.max_retries,
        **kwargs,
    )
