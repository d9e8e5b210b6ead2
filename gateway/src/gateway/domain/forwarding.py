"""The rules of passing a request on to a service and its answer back (RFC 9110 §7.6 proxies).

Pure functions: which headers travel (hop-by-hop ones never do, nor anything the ``Connection`` header
names), which paths are acceptable (no dot segments, empty segments or encoded slashes that could make
the service see another route than the one the policy table allowed), and when a failed attempt may be
repeated (only when the request is idempotent, or provably never reached the service).
"""

from __future__ import annotations

from collections.abc import Iterable

# RFC 9110 §7.6.1, plus the proxy-specific ones.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the gateway itself on the way in (from what it saw) or on the way out (its own values).
REQUEST_REPLACED = frozenset(
    {
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-prefix",
    }
)
RESPONSE_REPLACED = frozenset({"content-length", "date", "server", "x-request-id", "x-correlation-id"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})


class BadPath(ValueError):
    pass


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(t.strip().lower() for t in value.split(",") if t.strip())
    return named


def request_headers(
    incoming: Iterable[tuple[str, str]],
    *,
    client_ip: str,
    scheme: str,
    host: str | None,
    prefix: str,
    drop_authorization: bool = False,
) -> list[tuple[str, str]]:
    """The headers to send upstream: end-to-end ones as received, then the ``X-Forwarded-*`` set."""
    incoming = list(incoming)
    dropped = HOP_BY_HOP | REQUEST_REPLACED | _connection_tokens(incoming)
    if drop_authorization:
        dropped = dropped | {"authorization", "cookie"}
    out = [(n, v) for n, v in incoming if n.lower() not in dropped]
    forwarded_for = [v for n, v in incoming if n.lower() == "x-forwarded-for"]
    # The gateway is the edge: what clients claim in X-Forwarded-For is kept (for logs) but the hop the
    # gateway saw is appended last, which is what the services read.
    chain = ", ".join([*forwarded_for, client_ip]) if forwarded_for else client_ip
    out.append(("x-forwarded-for", chain))
    out.append(("x-forwarded-proto", scheme))
    if host:
        out.append(("x-forwarded-host", host))
    out.append(("x-forwarded-prefix", prefix))
    return out


def response_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    upstream = list(upstream)
    dropped = HOP_BY_HOP | RESPONSE_REPLACED | _connection_tokens(upstream)
    return [(n, v) for n, v in upstream if n.lower() not in dropped]


def check_path(raw_path: bytes, path: str) -> None:
    """Refuse paths a service might resolve differently from the gateway's policy match."""
    lowered = raw_path.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"\\" in raw_path or "\\" in path:
        raise BadPath("encoded slashes are not accepted in paths")
    segments = path.split("/")[1:]
    if any(s in ("", ".", "..") for s in segments):
        raise BadPath("empty or dot segments are not accepted in paths")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise BadPath("control characters are not accepted in paths")


def may_retry(method: str, headers: Iterable[tuple[str, str]]) -> bool:
    """Whether an attempt that failed after the request may have reached the service can be repeated:
    idempotent methods, and writes carrying an ``Idempotency-Key`` (the service answers a repeat with the
    first outcome)."""
    if method in IDEMPOTENT_METHODS:
        return True
    return any(n.lower() == "idempotency-key" for n, _ in headers)
