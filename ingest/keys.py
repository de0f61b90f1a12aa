"""Every Redis key, stream and channel name, as functions of the namespace.

This is the only module that spells a key. docs/redis.md
section documents the same list; change both together.

On a Redis Cluster (`cluster=True`) the keys one script touches carry the same
hash tag (`{...}`), so they live in one slot: a feed's hash, its dedup state
and its delivery outbox share `{<feed_id>}`; the schedule and its leases share
`{<ns>:schedule}`; the item stream, its retry streams and the delivery
positions share `{<ns>:items}`; the counters and the per-minute keys share
`{<ns>:stats}`. On a single Redis the names stay what they always were, so an
existing deployment needs no migration (docs/decisions.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arq.constants import in_progress_key_prefix

if TYPE_CHECKING:
    from ingest.settings import Settings

__all__ = ["Keys"]


class Keys:
    """Key names under one namespace (`<ns>`, default "ingest")."""

    def __init__(self, namespace: str, cluster: bool = False) -> None:
        self.ns = namespace
        self.cluster = cluster
        # Slot groups: "<ns>:schedule" on one Redis, "{<ns>:schedule}" on a cluster.
        self._schedule = self._tag(f"{namespace}:schedule")
        self._items = self._tag(f"{namespace}:items")
        self._stats = self._tag(f"{namespace}:stats")

    def _tag(self, text: str) -> str:
        return f"{{{text}}}" if self.cluster else text

    @classmethod
    def for_settings(cls, settings: Settings) -> Keys:
        """The names for `settings`' namespace and Redis mode (one server or a cluster)."""
        return cls(settings.namespace, settings.redis_cluster)

    # Delivery: the durable stream and the live channels.

    @property
    def items_stream(self) -> str:
        """Stream of item records; each entry has one field, `item`: the record's JSON or a zstd frame of it."""
        return self._items

    @property
    def items_channel(self) -> str:
        """Pub/Sub channel carrying every new or changed item (same JSON as the stream)."""
        return f"{self.ns}:items"

    def record_dictionary(self, dict_id: int) -> str:
        """The zstd dictionary (raw bytes) that stream entries naming `dict_id` were compressed with."""
        return f"{self.ns}:dict:{dict_id}"

    def feed_channel(self, feed_id: str) -> str:
        """Pub/Sub channel carrying the items of one feed."""
        return f"{self.ns}:items:feed:{feed_id}"

    def tag_channel(self, tag: str) -> str:
        """Pub/Sub channel carrying the items of every feed with this tag."""
        return f"{self.ns}:items:tag:{tag}"

    @property
    def events_channel(self) -> str:
        """Pub/Sub channel for feed state changes (JSON objects)."""
        return f"{self.ns}:events"

    @property
    def dead_stream(self) -> str:
        """Dead-letter stream: input that could not be processed, with the reason."""
        return f"{self.ns}:dead"

    def retry_stream(self, group: str) -> str:
        """Entries `ingest dead retry` put back for one consumer group alone (same fields);
        in the item stream's slot, as a group reads both in one XREADGROUP."""
        if self.cluster:
            return f"{self._items}:retry:{group}"
        return f"{self.ns}:retry:{group}"

    @property
    def delivery_positions(self) -> str:
        """Hash feed id -> the last outbox number appended to the stream (cluster mode:
        ingest/deliver/publish.py); in the item stream's slot, written with each append."""
        return f"{self._items}:appended"

    # Retention of the stream for durable groups, backpressure (ingest/deliver/trim.py).

    @property
    def durable_groups(self) -> str:
        """Hash durable group name -> "protected" or "released:<epoch s>": which groups hold
        the item stream from being trimmed; written by the stream trimmer each tick."""
        return f"{self.ns}:durable"

    @property
    def backpressure(self) -> str:
        """JSON {reason, since} while the service takes no new work (the stream is near a
        cap); absent otherwise. Expires unless the trimmer refreshes it."""
        return f"{self.ns}:backpressure"

    @property
    def trim_lock(self) -> str:
        """Held for one tick by the one trimmer (of several `ingest run`) that trims now."""
        return f"{self.ns}:trim:lock"

    # State.

    def item_state(self, item_id: str) -> str:
        """Before #13: dedup state of one item, "version|content_hash|fingerprint" with a TTL.
        Still read on a single Redis and moved into `item_states` when found."""
        return f"{self.ns}:item:{item_id}"

    def item_states(self, feed_id: str) -> str:
        """Dedup/update state of a feed's items: hash of 16-byte item id -> packed state
        (ingest/deliver/state.py), expiring `item_retention_days` after the last delivery."""
        return f"{self.ns}:seen:{self._tag(feed_id)}"

    def raw_seen(self, feed_id: str) -> str:
        """What the worker got from each entry of the feed's last document, by a hash of the
        entry's bytes (workers/rawseen.py): hash of 16-byte raw key -> item id, fingerprint,
        publication time; replaced with each document, expiring with the item retention."""
        return f"{self.ns}:rawseen:{self._tag(feed_id)}"

    def outbox(self, feed_id: str) -> str:
        """Cluster mode: list of a feed's item records decided but not yet appended to the
        stream (ingest/deliver/publish.py); usually empty."""
        return f"{self.ns}:outbox:{self._tag(feed_id)}"

    def robots(self, robots_url: str) -> str:
        """An article host's robots.txt as fetched (`\\x00none`: it has none), with a TTL."""
        return f"{self.ns}:robots:{robots_url}"

    def article_page(self, page_hash: str) -> str:
        """An article page's validators and the text read from it (zlib-compressed JSON,
        workers/article/pagecache.py), by a hash of its URL, with a TTL."""
        return f"{self.ns}:page:{page_hash}"

    # Per-host politeness shared by every process (ingest/poll/hostslots.py). The host
    # in braces keeps a host's two keys in one Redis Cluster slot.

    def host_slots(self, host: str) -> str:
        """Sorted set of the requests in flight to one host: token -> lease expiry (ms,
        Redis time), at most `per_host_concurrency` members; expires when idle."""
        return f"{self.ns}:host:{{{host}}}:slots"

    def host_pace(self, host: str) -> str:
        """Hash of one host's pacing: `next` (ms, Redis time, before which no request may
        start) and `shared_until` (article fetching going on until then); expires when idle."""
        return f"{self.ns}:host:{{{host}}}"

    @property
    def shared_hosts(self) -> str:
        """Sorted set of hosts whose requests are paced in Redis because article pages are
        fetched from them: host -> until (epoch ms). Pollers read it twice a second."""
        return f"{self.ns}:hosts:shared"

    def feed(self, feed_id: str) -> str:
        """Hash of one feed: url, title, tags, interval, validators, status, errors."""
        return f"{self.ns}:feed:{self._tag(feed_id)}"

    # Near-duplicate clustering (workers/clusters/index.py); every key has a TTL but
    # `cluster_bands_since` (a number, set once).

    def cluster_item(self, item_id: str) -> str:
        """Before #21: an item's entry by its whole id (the entry format of `cluster_entry`);
        still read for an item's own cluster, never written, they expire."""
        return f"{self.ns}:cluster:item:{item_id}"

    def cluster_band_packed(self, band: bytes) -> bytes:
        """Before #21: LSH band as 9 bytes (its index, its two MinHash values) -> 16-byte id
        of the first item seen with it; no longer written or read, they expire."""
        return f"{self.ns}:cb:".encode() + band

    def cluster_entry(self, handle: bytes) -> bytes:
        """An item's entry in the cluster index by its handle (the first 8 bytes of its
        id, #21): byte 0x03, its cluster id (16 bytes), its shingle sample."""
        return f"{self.ns}:ce:".encode() + handle

    def cluster_bands(self, bucket: int, shard: int) -> str:
        """One small hash of LSH bands (#21): the bands first seen in time bucket `bucket`
        whose hash falls in `shard` (6 hex digits); 4-byte band hash -> 8-byte item
        handle. It expires as a whole (workers/clusters/index.py)."""
        return f"{self.cluster_bands_prefix}{bucket}:{shard:06x}"

    @property
    def cluster_bands_prefix(self) -> str:
        """What every `cluster_bands` name starts with (the read script makes them)."""
        return f"{self.ns}:cbk:"

    def cluster_hashes_made(self, bucket: int) -> str:
        """A bitmap of the shards whose band hash of `bucket` was made (and given its
        expiry) by the read script (#21, decision 140); that it exists says the bucket
        has band hashes. It expires with them."""
        return f"{self.cluster_hashes_made_prefix}{bucket}"

    @property
    def cluster_hashes_made_prefix(self) -> str:
        """What every `cluster_hashes_made` name starts with."""
        return f"{self.ns}:cbs:"

    @property
    def cluster_bands_since(self) -> str:
        """The first time bucket written with `cluster_hashes_made` bitmaps (#21, decision
        140): an older bucket may hold band hashes without one (each is read); from
        this bucket on, a bucket without one holds none (it is not read). No TTL."""
        return f"{self.ns}:cbv"

    @property
    def feeds(self) -> str:
        """Set of every registered feed id (enabled or disabled)."""
        return f"{self.ns}:feeds"

    @property
    def feed_urls(self) -> str:
        """Hash canonical feed URL -> feed id (finds a feed by URL; follows moves)."""
        return f"{self.ns}:feed_urls"

    @property
    def schedule(self) -> str:
        """Sorted set of enabled feed ids by next due time (epoch ms); a claim pushes it out by the lease."""
        return self._schedule

    @property
    def leases(self) -> str:
        """Hash feed id -> token of the daemon holding its claim (in the schedule's slot)."""
        return f"{self._schedule}:leases" if self.cluster else f"{self.ns}:leases"

    @property
    def stats(self) -> str:
        """Hash of service-wide counters (items_new, fetch_errors, parse_errors, ...)."""
        return self._stats

    def items_minute(self, epoch_minute: int) -> str:
        """Items delivered in one minute (epoch seconds // 60), for the status chart; expires."""
        if self.cluster:
            return f"{self._stats}:minute:{epoch_minute}"
        return f"{self.ns}:minute:{epoch_minute}"

    # WebSub push subscriptions (ingest/push/).

    def push_subscription(self, token: str) -> str:
        """Hash of one WebSub subscription, by its callback token: feed_id, hub, topic,
        secret, state, pending mode, lease expiry, failures (ingest/push/state.py)."""
        return f"{self.ns}:push:{token}"

    @property
    def push_subscriptions(self) -> str:
        """Set of the callback tokens of every subscription record (the renewal loop's index)."""
        return f"{self.ns}:push_subs"

    # arq.

    @property
    def queue(self) -> str:
        """arq's job queue (a sorted set owned by arq); job keys are arq's own."""
        return f"{self.ns}:queue"

    def arq_in_progress(self, job_id: str) -> str:
        """arq's marker of a running job (not namespaced: arq's own spelling); while it
        exists no worker starts the job. The liveness reaper deletes a dead worker's."""
        return in_progress_key_prefix + job_id

    # Worker liveness (ingest/liveness.py).

    def worker(self, worker_id: str) -> str:
        """A worker process's heartbeat: JSON {pid, host, jobs (finished), at}, expiring after
        `worker_heartbeat_ttl` unless refreshed. Gone means the worker is dead."""
        return f"{self.ns}:worker:{worker_id}"

    @property
    def running_jobs(self) -> str:
        """Hash arq job id -> JSON {worker, since}: who runs it, since when (set at job
        start, removed after). The reaper and `enqueue --wait` read the same note."""
        return f"{self.ns}:running"

    # Consumer groups.

    @property
    def storage_group(self) -> str:
        """Consumer group of the storage sink on the items stream."""
        return "storage"

    def webhook_group(self, name: str) -> str:
        """Consumer group of one webhook on the items stream (each webhook gets every item)."""
        return f"webhook:{name}"
