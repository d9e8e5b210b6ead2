"""CPU seconds used by the platform's processes during a run (``/proc``, Linux): each service process
(its pid file; with its uvicorn workers), PostgreSQL (the postmaster and its backends), Kafka, Redis and
the load generator. Divided into the requests each one served, that is the per-core throughput the
capacity model scales from."""

from __future__ import annotations

import os
from pathlib import Path

from utilis_shared import devstack

TICK = os.sysconf("SC_CLK_TCK")


def _table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of it and its reaped children)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        # after the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14), 0-based here
        ppid = int(fields[1])
        cpu = sum(int(f) for f in fields[11:15]) / TICK
        out[int(entry.name)] = (ppid, cpu)
    return out


def _tree(root: int, table: dict[int, tuple[int, float]]) -> float:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
            todo += children.get(pid, [])
    return total


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def processes(platform: devstack.Platform, extra: dict[str, int] | None = None) -> dict[str, int]:
    """Name -> pid of what to measure: every platform process, the infrastructure, and ``extra``."""
    local = devstack.LOCAL_DIR
    named = {
        f"{name}-{kind}": local / "run" / f"{name}-{kind}.pid"
        for name, spec in platform.services.items()
        for kind in spec.processes
    }
    named |= {
        "postgresql": local / "pg" / "data" / "postmaster.pid",
        "kafka": local / "kafka" / "kafka.pid",
        "redis": local / "redis" / "redis.pid",
    }
    out = {name: pid for name, path in named.items() if (pid := _pid(path)) is not None}
    return out | (extra or {})


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    table = _table()
    return {name: _tree(pid, table) for name, pid in pids.items()}


def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after}
