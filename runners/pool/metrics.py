"""Prometheus metrics of the runner pool (served by ``autoflow worker --metrics-port``)."""

from __future__ import annotations

import prometheus_client

RUNS_IN_FLIGHT = prometheus_client.Gauge(
    "autoflow_pool_runs_in_flight", "Runs this worker is executing now.", ["worker"]
)
QUEUE_PENDING = prometheus_client.Gauge(
    "autoflow_pool_queue_pending",
    "Run ids queued on JetStream that no worker has taken yet (queue depth).",
)
QUEUE_ACK_PENDING = prometheus_client.Gauge(
    "autoflow_pool_queue_ack_pending",
    "Run ids delivered to workers and not acked yet (runs in flight across the pool).",
)
LATENCY = prometheus_client.Histogram(
    "autoflow_pool_trigger_to_finish_seconds",
    "From the run being queued (the trigger) to its end being recorded.",
    ["phase"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DEAD_LETTERS = prometheus_client.Counter(
    "autoflow_pool_dead_letters_total",
    "Runs given up after the maximum deliveries (ended Failed, message dead-lettered).",
)
