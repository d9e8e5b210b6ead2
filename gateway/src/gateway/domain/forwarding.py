"""The rules of passing a request on to a service and its answer back (RFC 9110 §7.6 proxies).

Pure functions: which headers travel (hop-by-hop ones never do, nor anything the ``Connection`` header
names), which paths are acceptable (no dot segments, empty segments or encoded slashes that could make
the service see another route than the one the policy table allowed), and when a failed attempt may be
repeated (only when the request is idempotent, or provably never reached the service).
"""

from __future__ import annotations

from collections.abc import Iterable

# Headers are handled as ASGI has them: (name, value) byte pairs, names lower-case (the server lower-cases
# what it receives; the services' answers are compared case-insensitively).
# RFC 9110 §7.6.1, plus the proxy-specific ones.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself on the way in (from what it saw) or on the way out (its own values).
REQUEST_REPLACED = frozenset(
    {
        b"host",
        b"content-length",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-prefix",
        b"x-request-id",
        b"x-correlation-id",
    }
)
PUBLIC_DROPPED = frozenset({b"authorization", b"cookie"})
RESPONSE_REPLACED = frozenset({b"content-length", b"date", b"server", b"x-request-id", b"x-correlation-id"})
REQUEST_DROPPED = HOP_BY_HOP | REQUEST_REPLACED
RESPONSE_DROPPED = HOP_BY_HOP | RESPONSE_REPLACED
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})

Headers = list[tuple[bytes, bytes]]


class BadPath(ValueError):
    pass


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return named


def request_headers(
    incoming: Iterable[tuple[bytes, bytes]],
    *,
    client_ip: str,
    scheme: str,
    host: bytes | None,
    prefix: str,
    request_id: str,
    correlation_id: str,
    drop_authorization: bool = False,
) -> Headers:
    """The headers to send upstream: end-to-end ones as received, then the ``X-Forwarded-*`` set and the
    request and correlation ids the gateway settled on (the client's when well-formed)."""
    incoming = list(incoming)
    named = _connection_tokens(incoming)
    dropped = REQUEST_DROPPED
    if named:
        dropped = dropped | named
    if drop_authorization:
        dropped = dropped | PUBLIC_DROPPED
    out = [(n, v) for n, v in incoming if n.lower() not in dropped]
    # The gateway is the edge: what clients claim in X-Forwarded-For is kept (for logs) but the hop the
    # gateway saw is appended last, which is what the services read.
    chain = client_ip.encode("latin-1")
    forwarded_for = [v for n, v in incoming if n.lower() == b"x-forwarded-for"]
    if forwarded_for:
        chain = b", ".join([*forwarded_for, chain])
    out.append((b"x-forwarded-for", chain))
    out.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-forwarded-prefix", prefix.encode("latin-1")))
    out.append((b"x-request-id", request_id.encode("latin-1")))
    out.append((b"x-correlation-id", correlation_id.encode("latin-1")))
    return out


def response_headers(upstream: Iterable[tuple[bytes, bytes]]) -> Headers:
    upstream = list(upstream)
    named = _connection_tokens(upstream)
    dropped = RESPONSE_DROPPED | named if named else RESPONSE_DROPPED
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


def may_retry(method: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether an attempt that failed after the request may have reached the service can be repeated:
    idempotent methods, and writes carrying an ``Idempotency-Key`` (the service answers a repeat with the
    first outcome)."""
    if method in IDEMPOTENT_METHODS:
        return True
    return any(n.lower() == b"idempotency-key" for n, _ in headers)
