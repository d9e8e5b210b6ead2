"""Create the Kafka topics declared in deploy/platform.yaml that do not exist yet (idempotent).

uv run python scripts/create_topics.py [--prefix PREFIX] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from utilis_shared import devstack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default=os.environ.get("UTILIS_KAFKA_TOPIC_PREFIX", ""))
    parser.add_argument("--bootstrap", default=devstack.kafka_bootstrap())
    args = parser.parse_args(argv)
    platform = devstack.load_platform()
    try:
        created = asyncio.run(devstack.ensure_topics(args.bootstrap, platform.topics, prefix=args.prefix))
    except Exception as exc:
        print(f"create_topics: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} created, {len(platform.topics) - len(created)} already present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
