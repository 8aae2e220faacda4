"""A minimal service on the shared runtime, for the runtime's process-level tests.

It polls a topic in the loop shape every Tether service uses (poll -> handle -> commit) and is
ready while its Kafka bootstrap address is reachable.
"""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry

from services.core.kafka import commit_offsets, make_consumer, next_offsets
from services.core.metrics import CoreMetrics
from services.core.runtime import CachedCheck, ServiceRuntime, configure_logging, tcp_reachable
from services.core.settings import TetherSettings


def main() -> int:
    settings = TetherSettings.load(http_port=0)
    configure_logging("probe", settings.log_level)
    registry = CollectorRegistry()
    metrics = CoreMetrics(registry, "probe")
    runtime = ServiceRuntime(
        "probe", registry, "127.0.0.1", settings.http_port, settings.shutdown_timeout_seconds
    )
    runtime.http.add_check(
        "kafka", CachedCheck(lambda: tcp_reachable(settings.kafka_bootstrap_servers), 0.5)
    )
    runtime.install_signal_handlers()
    topic = sys.argv[1]

    def loop(rt: ServiceRuntime) -> None:
        consumer = make_consumer(settings, f"{settings.topic_prefix}-probe", [topic])
        try:
            while not rt.stopping.is_set():
                rt.heartbeat()
                batches = consumer.poll(timeout_ms=200)  # 1. poll
                records = [r for batch in batches.values() for r in batch]
                for record in records:  # 2. handle
                    metrics.consumed.labels(record.topic).inc()
                commit_offsets(consumer, next_offsets(records))  # 3. commit
        finally:
            consumer.close()

    return runtime.run(loop)


if __name__ == "__main__":
    sys.exit(main())
