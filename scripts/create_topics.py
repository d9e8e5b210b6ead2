"""Create the Kafka topics declared in deploy/platform.yaml (key ``topics:``) that do not exist yet.

    uv run python scripts/create_topics.py [--prefix PREFIX] [--bootstrap HOST:PORT] [--config FILE]

Idempotent: existing topics are left as they are (a partition count that differs from the declaration is
reported, not changed). Tests pass a per-run ``--prefix`` (or UTILIS_KAFKA_TOPIC_PREFIX) so that runs do not
share topics. Exit status 0 on success, 1 on any failure. Needs the packages aiokafka and pyyaml.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "deploy" / "platform.yaml"
DEFAULT_BOOTSTRAP = "127.0.0.1:59092"

# Kafka protocol error codes that mean "already there" for CreateTopics.
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


def load_topics(config: Path, prefix: str) -> list[TopicSpec]:
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    entries = data.get("topics")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{config}: no 'topics:' list")
    specs = []
    for i, entry in enumerate(entries):
        try:
            specs.append(
                TopicSpec(
                    name=prefix + str(entry["name"]),
                    partitions=int(entry["partitions"]),
                    retention_ms=int(entry["retention_ms"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{config}: topics[{i}] needs name, partitions, retention_ms: {exc!r}") from exc
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{config}: duplicate topic names")
    return specs


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], replication_factor: int) -> list[str]:
    """Create the missing topics; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        present = [s for s in specs if s.name in existing]

        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {t["topic"]: len(t["partitions"]) for t in described}
            for s in present:
                if counts.get(s.name, s.partitions) != s.partitions:
                    print(
                        f"warning: topic {s.name} has {counts[s.name]} partitions, declared {s.partitions}"
                        " (left unchanged)",
                        file=sys.stderr,
                    )

        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=replication_factor,
                        topic_configs={"retention.ms": str(s.retention_ms)},
                    )
                    for s in missing
                ],
                timeout_ms=30000,
            )
            errors = []
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                message = topic_error[2] if len(topic_error) > 2 else None
                if code == 0:
                    created.append(name)
                elif code != TOPIC_ALREADY_EXISTS:  # created concurrently by someone else: fine
                    errors.append(f"{name}: error code {code} {message or ''}".rstrip())
            if errors:
                raise RuntimeError("create_topics failed: " + "; ".join(errors))
        return created
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--prefix",
        default=os.environ.get("UTILIS_KAFKA_TOPIC_PREFIX", ""),
        help="string prepended to every topic name (env UTILIS_KAFKA_TOPIC_PREFIX)",
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("UTILIS_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
        help=f"Kafka bootstrap servers (env UTILIS_KAFKA_BOOTSTRAP, default {DEFAULT_BOOTSTRAP})",
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="platform.yaml to read")
    parser.add_argument("--replication-factor", type=int, default=1, help="default 1 (one local broker)")
    args = parser.parse_args(argv)

    try:
        specs = load_topics(args.config, args.prefix)
        created = asyncio.run(ensure_topics(args.bootstrap, specs, args.replication_factor))
    except Exception as exc:
        print(f"create_topics: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} created, {len(specs) - len(created)} already present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
