"""JSON-lines logging with the service name, request id and correlation id on every line.

A last-line-of-defence filter masks anything that looks like a mainland mobile number or a resident
ID-card number, so a careless ``log.info(f"... {phone}")`` cannot leak personal data.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

from utilis_shared.context import correlation_id_var, request_id_var

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[\dXx])(?![0-9A-Za-z])")


def redact(text: str) -> str:
    """Mask phone numbers and ID-card numbers wherever they appear in free text."""
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}{'*' * 11}{m.group(2)}", text)
    return _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


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
        if record.args:
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
            if isinstance(value, str) and key not in ("ts", "level"):
                log_record[key] = redact(value)


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
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn's own handlers would print plain text beside ours: route everything through the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # we log requests ourselves
