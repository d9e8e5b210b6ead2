"""Residents' SMS codes during a load test: the development SMS adapter sends nothing and writes each code
(development only) to the gateway API's JSON log, with the request id of the ``POST /oauth/sms-codes``
that asked for it. :class:`SmsInbox` tails that log from where it ends when the test starts (a greenlet
reading what was appended every few milliseconds) and hands a code out by request id: the request sets
``X-Request-ID``, so the match is exact however many residents sign in at once and whichever gateway
worker answered. The ids are UUIDs, which the logging filter writes whole (it masks phone-shaped runs
elsewhere, and about one UUID in a thousand has one: ``…a182-8074-4185…``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import gevent

MARK = b'"sms code sent'


class SmsInbox:
    def __init__(self, log_file: Path, *, interval: float = 0.02) -> None:
        self.log_file = log_file
        self.interval = interval
        self.codes: dict[str, str] = {}
        self.missed = 0  # codes the tail had not seen in time
        self.found_late = 0  # ... and found by searching the log again
        self.lost: list[str] = []  # request ids whose code was never found
        self._offset = log_file.stat().st_size if log_file.exists() else 0
        self._rest = b""
        self._reader = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            self.read_new()
            gevent.sleep(self.interval)

    def read_new(self) -> None:
        try:
            size = self.log_file.stat().st_size
        except FileNotFoundError:
            return
        if size < self._offset:  # truncated or replaced: start again from its beginning
            self._offset, self._rest = 0, b""
        if size == self._offset:
            return
        with self.log_file.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        self._offset += len(chunk)
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if MARK not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("code") and record.get("request_id"):
                self.codes[record["request_id"]] = record["code"]

    def code_for(self, request_id: str, *, within: float = 10.0) -> str | None:
        """The code sent by the request ``request_id`` (removed once handed out), or None. Not seen by the
        tail within ``within`` seconds, the log's last megabyte is searched once more for it."""
        deadline = time.monotonic() + within
        while True:
            code = self.codes.pop(request_id, None)
            if code is not None:
                return code
            if time.monotonic() >= deadline:
                return self._search_tail(request_id)
            gevent.sleep(self.interval)

    def _search_tail(self, request_id: str, size: int = 1 << 20) -> str | None:
        self.missed += 1
        with self.log_file.open("rb") as f:
            f.seek(max(0, self.log_file.stat().st_size - size))
            for line in f.read().split(b"\n"):
                if MARK in line and request_id.encode() in line:
                    self.found_late += 1
                    return json.loads(line).get("code")
        self.lost.append(request_id)
        return None

    def close(self) -> None:
        self._reader.kill()
