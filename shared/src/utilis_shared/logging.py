"""JSON-lines logging with the service name, request id and correlation id on every line.

A last-line-of-defence filter masks anything that looks like a mainland mobile number or a resident
ID-card number, so a careless ``log.info(f"... {phone}")`` cannot leak personal data.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from utilis_shared.context import correlation_id_var, request_id_var

# 11 digits, also written 138 4567 1234 / 138-4567-1234 and glued to a +86 / 0086 country code.
_PHONE = re.compile(r"(?:(?<!\d)|(?<=\+86)|(?<=(?<!\d)0086))(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[\dXx])(?![0-9A-Za-z])")


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def redact(text: str) -> str:
    """Mask phone numbers and ID-card numbers wherever they appear in free text."""
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}{'*' * 11}{m.group(2)}", text)
    return _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


def _redact_value(value: Any) -> Any:
    """``redact`` through the values ``extra={...}`` may carry: nested dicts/lists and bare integers."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        masked = redact(str(value))
        return value if masked == str(value) else masked
    return value


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        record.correlation_id = correlation_id_var.get()
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, Mapping):  # log.info("%(phone)s", {"phone": ...})
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class _Formatter(JsonFormatter):
    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_record["level"] = record.levelname.lower()
        log_record["event"] = log_record.pop("message", record.getMessage())
        log_record.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
        for key, value in list(log_record.items()):
            if key in ("ts", "level"):
                continue
            if key in ("request_id", "correlation_id") and isinstance(value, str) and _UUID.match(value):
                continue  # a UUID can hold a phone-shaped run (~1 in 1,000); masking it breaks correlation
            log_record[key] = _redact_value(value)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(
        _Formatter(
            "%(service)s %(request_id)s %(correlation_id)s %(name)s",
            rename_fields={"name": "logger"},
            json_ensure_ascii=False,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn's own handlers would print plain text beside ours: route everything through the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # we log requests ourselves
