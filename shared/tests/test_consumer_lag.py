"""The consumer-lag gauge reports only the partitions this replica holds (a rebalance moves the others)."""

from __future__ import annotations

from aiokafka import TopicPartition

from utilis_shared.inbox import EventConsumer, HandlerRegistry
from utilis_shared.metrics import CONSUMER_LAG
from utilis_shared.settings import ServiceSettings


class FakeKafkaConsumer:
    def __init__(self, assigned: set[TopicPartition], highwater: int) -> None:
        self.assigned, self.high = assigned, highwater

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int:
        return self.high

    async def position(self, tp: TopicPartition) -> int:
        return 40


def lag_series(consumer: str) -> dict[str, float]:
    return {
        sample.labels["partition"]: sample.value
        for metric in CONSUMER_LAG.collect()
        for sample in metric.samples
        if sample.labels["service"] == consumer
    }


async def test_a_partition_moved_away_by_a_rebalance_stops_being_reported() -> None:
    settings = ServiceSettings(service_name="lag-test", environment="test")
    a, b = TopicPartition("t.events", 0), TopicPartition("t.events", 1)
    kafka = FakeKafkaConsumer({a, b}, highwater=100)
    consumer = EventConsumer(
        settings, None, HandlerRegistry(), ["t.events"], consumer=kafka, dlq_producer=object()
    )  # type: ignore[arg-type]
    await consumer._observe_lag()
    assert lag_series("lag-test") == {"0": 60, "1": 60}

    kafka.assigned, kafka.high = {a}, 45
    await consumer._observe_lag()
    assert lag_series("lag-test") == {"0": 60, "1": 60}, "observed at most once a second"
    consumer._lag_observed_at -= 1.0
    await consumer._observe_lag()
    assert lag_series("lag-test") == {"0": 5}
