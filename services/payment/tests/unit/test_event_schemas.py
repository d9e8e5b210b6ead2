"""The JSON Schemas committed under services/payment/events/ are the ones the code emits."""

from __future__ import annotations

import json
from pathlib import Path

from payment.events import catalog

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def test_committed_schemas_match_the_catalog() -> None:
    committed = {p.name: json.loads(p.read_text()) for p in EVENTS_DIR.glob("*.json")}
    generated = catalog.json_schemas()
    assert sorted(committed) == sorted(f"{t}.v1.json" for t in generated), "run events-schemas"
    for event_type, schema in generated.items():
        assert committed[f"{event_type}.v1.json"] == json.loads(json.dumps(schema)), (
            f"{event_type} changed: run `payment events-schemas` and keep the change additive"
        )


def test_every_type_follows_the_naming_rule() -> None:
    assert catalog.source == "payment"
    for event_type in catalog.types:
        service, aggregate, verb = event_type.split(".")
        assert service == "payment" and aggregate.isidentifier() and verb.endswith("ed")
