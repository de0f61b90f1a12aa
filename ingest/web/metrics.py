"""`GET /metrics`: Prometheus text format, from the counters every process keeps in Redis.

Why a custom collector over Redis rather than prometheus-client's own
counters: fetchers, workers and sinks run in separate processes and on
separate machines (`ingest run`, `ingest worker`), and a process's own
registry would show a scrape only that process's share. prometheus-client's
multiprocess mode shares files in one directory, so one machine only. The
events are therefore counted where they happen, into the `<ns>:stats` hash
(ingest/counters.py, pipelined HINCRBY), and each scrape reads one snapshot
of Redis and exposes it through a collector made for that snapshot: every
process's /metrics shows the same, service-wide numbers. prometheus-client
still does the exposition (names, types, escaping, the text format).

Histograms are kept in the hash one field per bucket (not cumulative);
the collector adds them up into Prometheus's cumulative `le` buckets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ingest.counters import FETCH_BUCKETS, LATENCY_BUCKETS
from ingest.stats import Snapshot, feeds_by_state, read_snapshot
from ingest.web.app import SERVICES

__all__ = ["SnapshotCollector", "render_metrics", "routes"]

routes = web.RouteTableDef()

# Counters with a metric of their own; every other field of the hash is
# exposed as ingest_events_total{name=...} so nothing counted is hidden.
_OWN_PREFIXES = ("fetch_outcome:", "fetch_seconds", "fetch_bytes", "parse_seconds", "normalize_seconds",
                 "fetch_to_stream_seconds", "push_to_stream_seconds", "dead_letters:", "items_new", "items_updated",
                 "items_version_capped", "stream_trimmed_unread", "durable_groups_released",
                 "backpressure_engaged")


def _histogram(name: str, doc: str, counters: dict[str, float], field: str,
               bounds: Sequence[float]) -> HistogramMetricFamily:
    total = 0.0
    buckets: list[tuple[str, float]] = []
    for bound in bounds:
        total += counters.get(f"{field}_bucket:{bound:g}", 0)
        buckets.append((f"{bound:g}", total))
    buckets.append(("+Inf", total + counters.get(f"{field}_bucket:+Inf", 0)))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=counters.get(f"{field}_sum", 0))


class SnapshotCollector(Collector):
    """Metrics of one Redis snapshot (made per scrape; collect() is pure)."""

    def __init__(self, snap: Snapshot, feeds: dict[str, int], redis_info: dict[str, Any] | None = None) -> None:
        self.snap = snap
        self.feeds = feeds
        self.redis_info = redis_info or {}

    def collect(self) -> Iterator[Metric]:
        c = self.snap.counters
        outcomes = CounterMetricFamily("ingest_fetches", "Polls by outcome: 200, 304, unchanged_body, "
                                       "http_<status>, timeout, network, refused, too_large, error",
                                       labels=["outcome"])
        for key, value in sorted(c.items()):
            if key.startswith("fetch_outcome:"):
                outcomes.add_metric([key.partition(":")[2]], value)
        yield outcomes
        yield _histogram("ingest_fetch_duration_seconds", "Time of one poll's HTTP fetch", c,
                         "fetch_seconds", FETCH_BUCKETS)
        yield CounterMetricFamily("ingest_fetched_bytes", "Body bytes received by polls",
                                  value=c.get("fetch_bytes", 0))
        for stage in ("parse", "normalize"):
            yield SummaryMetricFamily(f"ingest_{stage}_seconds", f"Time to {stage} one document",
                                      count_value=int(c.get(f"{stage}_seconds_count", 0)),
                                      sum_value=c.get(f"{stage}_seconds_sum", 0))
        items = CounterMetricFamily("ingest_items", "Item versions delivered (new, updated) or "
                                    "held back by max_versions (capped)", labels=["kind"])
        for kind, key in (("new", "items_new"), ("updated", "items_updated"), ("capped", "items_version_capped")):
            items.add_metric([kind], c.get(key, 0))
        yield items
        yield _histogram("ingest_fetch_to_stream_seconds", "From a version's fetch to its entry on the "
                         "stream", c, "fetch_to_stream_seconds", LATENCY_BUCKETS)
        yield _histogram("ingest_push_to_stream_seconds", "From a WebSub push's arrival to its entry on "
                         "the stream", c, "push_to_stream_seconds", LATENCY_BUCKETS)
        yield from self._gauges()
        yield from self._retention()
        dead = CounterMetricFamily("ingest_dead_letters_written", "Dead letters written, by kind",
                                   labels=["kind"])
        for key, value in sorted(c.items()):
            if key.startswith("dead_letters:"):
                dead.add_metric([key.partition(":")[2]], value)
        yield dead
        other = CounterMetricFamily("ingest_events", "Other service counters of <ns>:stats", labels=["name"])
        for key, value in sorted(c.items()):
            if not key.startswith(_OWN_PREFIXES):
                other.add_metric([key], value)
        yield other
        yield from self._redis()

    def _retention(self) -> Iterator[Metric]:
        """The stream kept for durable groups, and backpressure (#20)."""
        c, s = self.snap.counters, self.snap
        yield CounterMetricFamily("ingest_stream_trimmed_unread", "Entries cut from the item stream past a "
                                  "cap before a durable group acknowledged them (0 unless a cap was hit)",
                                  value=c.get("stream_trimmed_unread", 0))
        yield CounterMetricFamily("ingest_durable_groups_released", "Durable groups released from holding the "
                                  "stream after durable_group_timeout away", value=c.get("durable_groups_released", 0))
        yield CounterMetricFamily("ingest_backpressure_engaged", "Times backpressure engaged (the stream near "
                                  "a cap)", value=c.get("backpressure_engaged", 0))
        yield GaugeMetricFamily("ingest_backpressure", "1 while the service takes no new work (pollers do not "
                                "claim, enqueue answers busy), else 0", value=1 if s.backpressure else 0)
        reason = GaugeMetricFamily("ingest_backpressure_reason", "Why backpressure is engaged (only while it is)",
                                   labels=["reason"])
        if s.backpressure:
            reason.add_metric([s.backpressure], 1)
        yield reason
        durable = GaugeMetricFamily("ingest_group_durable", "1 for a durable group, by state: protected (the "
                                    "stream waits for it) or released", labels=["group", "state"])
        for g in s.groups:
            if g.durable:
                durable.add_metric([g.name, g.durable], 1)
        yield durable

    def _redis(self) -> Iterator[Metric]:
        """The Redis server's own view: a reconnect of any part shows as a new connection
        received, a Redis restart as uptime starting over."""
        info = self.redis_info
        if not info:
            return
        yield CounterMetricFamily("ingest_redis_connections_received", "Connections the Redis server "
                                  "accepted (reconnects of every process included)",
                                  value=float(info.get("total_connections_received", 0)))
        yield GaugeMetricFamily("ingest_redis_connected_clients", "Clients connected to Redis",
                                value=float(info.get("connected_clients", 0)))
        yield GaugeMetricFamily("ingest_redis_uptime_seconds", "Seconds since the Redis server started",
                                value=float(info.get("uptime_in_seconds", 0)))

    def _gauges(self) -> Iterator[Metric]:
        s = self.snap
        yield GaugeMetricFamily("ingest_queue_depth", "arq jobs waiting", value=s.queue_depth)
        yield GaugeMetricFamily("ingest_stream_length", "Entries in the item stream", value=s.stream_length)
        yield GaugeMetricFamily("ingest_dead_letters", "Entries in the dead-letter stream", value=s.dead_letters)
        pending = GaugeMetricFamily("ingest_group_pending", "Entries delivered to a consumer group, "
                                    "not yet acknowledged", labels=["group"])
        lag = GaugeMetricFamily("ingest_group_lag_seconds", "Age of the newest entry minus that of the "
                                "group's last delivered one", labels=["group"])
        consumers = GaugeMetricFamily("ingest_group_consumers", "Consumers in a group", labels=["group"])
        lag_entries = GaugeMetricFamily("ingest_group_lag_entries", "Entries not yet delivered to the group "
                                        "(Redis 7+; absent where the server cannot tell)", labels=["group"])
        for g in s.groups:
            pending.add_metric([g.name], g.pending)
            lag.add_metric([g.name], g.lag_seconds)
            consumers.add_metric([g.name], g.consumers)
            if g.lag is not None:
                lag_entries.add_metric([g.name], g.lag)
        yield from (pending, lag, consumers, lag_entries)
        feeds = GaugeMetricFamily("ingest_feeds", "Registered feeds by state", labels=["state"])
        for state, count in self.feeds.items():
            feeds.add_metric([state], count)
        yield feeds


def render_metrics(snap: Snapshot, feeds: dict[str, int], redis_info: dict[str, Any] | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap, feeds, redis_info))
    return generate_latest(registry)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    snap = await read_snapshot(services.redis, services.keys)
    feeds = await feeds_by_state(services.redis, services.keys)
    info = await services.redis.info()
    return web.Response(body=render_metrics(snap, feeds, info),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
