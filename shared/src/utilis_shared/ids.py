"""Opaque, time-ordered identifiers (UUIDv7) for internal rows and events."""

from __future__ import annotations

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    """A UUIDv7: sortable by creation time, so B-tree inserts stay append-mostly."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)
