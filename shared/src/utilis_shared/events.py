"""The event envelope every service publishes (CloudEvents-like) and its wire format.

Envelope: ``id, type, source, time, subject, schema_version, correlation_id, data``. ``type`` is
``<service>.<aggregate>.<past-tense verb>``; ``subject`` is the aggregate id and the Kafka key (the account
number for anything account-scoped, so one account's events stay in order on one partition).

Producers describe each payload with a pydantic model registered in an :class:`EventCatalog`; the catalog
writes their JSON Schemas under the service folder (``events/``) so consumers and contract tests can
check them.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncpg.pgproto.pgproto import UUID as _PgUUID
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from uuid_utils import uuid7

from utilis_shared.context import KAFKA_CORRELATION_HEADER, current_correlation_id
from utilis_shared.ids import new_id

#: The outbox columns of :meth:`EventCatalog.outbox_record` (for ``COPY ... (columns)``).
OUTBOX_RECORD_COLUMNS = ("id", "topic", "key", "event_type", "payload", "headers")


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=new_id)
    type: str
    source: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    schema_version: int = 1
    correlation_id: str | None = Field(default_factory=current_correlation_id)
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Event:
        return cls.model_validate_json(raw)

    def kafka_headers_dict(self) -> dict[str, str]:
        headers = {"event_type": self.type, "event_id": str(self.id)}
        if self.correlation_id:
            headers[KAFKA_CORRELATION_HEADER] = self.correlation_id
        return headers


class EventCatalog:
    """The events one service emits: type -> payload model. Building an event validates its payload."""

    def __init__(self, source: str, *, type_prefix: str | None = None) -> None:
        self.source = source
        self.type_prefix = type_prefix or source.replace("-", "_")
        self._models: dict[str, type[BaseModel]] = {}

    def register(self, event_type: str, schema_version: int = 1):
        prefix = f"{self.type_prefix}."
        if not event_type.startswith(prefix):
            raise ValueError(f"{event_type!r} must start with {prefix!r}")

        def decorate(model: type[BaseModel]) -> type[BaseModel]:
            self._models[event_type] = model
            model.__event_type__ = event_type  # type: ignore[attr-defined]
            model.__schema_version__ = schema_version  # type: ignore[attr-defined]
            return model

        return decorate

    def build(self, payload: BaseModel, *, subject: str) -> Event:
        event_type = getattr(type(payload), "__event_type__", type(payload).__name__)
        if self._models.get(event_type) is not type(payload):
            raise KeyError(f"{event_type} is not registered in the {self.source} catalog")
        return Event(
            type=event_type,
            source=self.source,
            subject=subject,
            schema_version=type(payload).__schema_version__,  # type: ignore[attr-defined]
            data=payload.model_dump(mode="json"),
        )

    def outbox_record(
        self,
        model: type[BaseModel],
        subject: str,
        data: dict[str, Any],
        topic: str,
        time_json: bytes | None = None,
    ) -> tuple[Any, ...]:
        """The outbox row (:data:`OUTBOX_RECORD_COLUMNS`) of event ``model`` with payload ``data``, built
        without pydantic, for bulk writers (an archive import, a billing run) that emit thousands of
        events a second: what ``build(...)`` then :meth:`Event.to_bytes` / :meth:`Event.kafka_headers_dict`
        give, byte for byte, provided ``data`` is the payload as ``model_dump(mode="json")`` would give it
        (keys in the model's field order; uuids, dates and decimals as their JSON strings). Callers pin
        that with a test that builds each event both ways. ``time_json``: the event time, serialised (a
        batch's events may share it); now by default. ``payload`` is bytes, ``headers`` a JSON string."""
        parts = self.outbox_parts(model, time_json)
        event_id = _PgUUID(uuid7().bytes)  # a UUIDv7, as new_id(), three times cheaper to make and print
        sid = str(event_id)
        payload = b"".join(
            (b'{"id":"', sid.encode(), parts.middle, to_json(subject), parts.tail, to_json(data), b"}")
        )
        headers = parts.headers_head + sid + parts.headers_tail
        return (event_id, topic, subject, parts.event_type, payload, headers)

    def outbox_parts(self, model: type[BaseModel], time_json: bytes | None = None) -> OutboxParts:
        """The constant parts of the outbox rows of event ``model`` at ``time_json`` (now by default) under
        the current correlation id, for writers that assemble many rows at once (column by column): see
        :class:`OutboxParts`."""
        if self._models.get(model.__event_type__) is not model:  # type: ignore[attr-defined]
            raise KeyError(f"{model.__name__} is not registered in the {self.source} catalog")
        event_type: str = model.__event_type__  # type: ignore[attr-defined]
        correlation_id = current_correlation_id()
        if time_json is None:
            time_json = to_json(datetime.now(UTC))
        middle, tail = _envelope_parts(
            self.source,
            event_type,
            model.__schema_version__,  # type: ignore[attr-defined]
            time_json,
            correlation_id,
        )
        if correlation_id:
            head, _, rest = json.dumps(
                {"event_type": event_type, "event_id": "\0", KAFKA_CORRELATION_HEADER: correlation_id}
            ).partition('"\\u0000"')
            headers_head, headers_tail = head + '"', '"' + rest
        else:  # event type and id only: both plain ASCII, no escaping needed
            headers_head, headers_tail = f'{{"event_type": "{event_type}", "event_id": "', '"}'
        return OutboxParts(event_type, middle, tail, headers_head, headers_tail)

    @property
    def types(self) -> dict[str, type[BaseModel]]:
        return dict(self._models)

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        out = {}
        for event_type, model in sorted(self._models.items()):
            schema = model.model_json_schema()
            schema["$id"] = f"https://schemas.utilis.dev/events/{event_type}/v{model.__schema_version__}.json"  # type: ignore[attr-defined]
            schema["title"] = event_type
            out[event_type] = schema
        return out

    def write_schemas(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for event_type, schema in self.json_schemas().items():
            path = folder / f"{event_type}.v{schema['$id'].rsplit('/v', 1)[1]}"
            path.write_text(json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
            written.append(path)
        return written


@functools.lru_cache(maxsize=256)
@dataclass(frozen=True, slots=True)
class OutboxParts:
    """What every outbox row of one event type, time and correlation id shares. A row's ``payload`` is
    ``{"id":"<id>`` + ``middle`` + the subject as JSON + ``tail`` + the data as JSON + ``}``, its
    ``headers`` ``headers_head + <id> + headers_tail`` (the id a UUID's text)."""

    event_type: str
    middle: bytes
    tail: bytes
    headers_head: str
    headers_tail: str


def _envelope_parts(
    source: str, event_type: str, schema_version: int, time_json: bytes, correlation_id: str | None
) -> tuple[bytes, bytes]:
    """The envelope's JSON around the id, the subject and the data: what ``Event.to_bytes`` writes, in its
    field order (id, type, source, time, subject, schema_version, correlation_id, data)."""
    middle = (
        b'","type":' + to_json(event_type) + b',"source":' + to_json(source)
        + b',"time":' + time_json + b',"subject":'
    )  # fmt: skip
    tail = b',"schema_version":' + to_json(schema_version) + b',"correlation_id":' + to_json(correlation_id)
    return middle, tail + b',"data":'
