"""The polling loop: claim due feeds -> fetch politely -> decide -> enqueue and record.

A shell around pure parts: `scheduler` claims (atomic, leased), `fetch`
fetches, `schedule.decide` decides, `enqueue` hands bodies to workers. Each
claimed feed runs as its own task, bounded by `poll_batch` in flight; hosts
are paced by `politeness.HostPacer`, and hosts that article pages are fetched
from also by their slots in Redis, shared with the workers (`hostslots.PollGate`:
no Redis round trip per poll for the other hosts). On stop: no new claims, in-flight
fetches get `shutdown_grace` seconds, and the leases of whatever did not
finish are released so another daemon can take them at once. Under
backpressure (the item stream near its cap, ingest/deliver/trim.py) no new
claims either, until it lifts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from ingest.counters import record_fetch
from ingest.deliver.events import publish_events
from ingest.deliver.trim import read_busy
from ingest.keys import Keys
from ingest.logs import feed_context
from ingest.models import FeedSpec, Fetched, FetchFailed
from ingest.poll.completions import CompletionBatcher
from ingest.poll.enqueue import QueueRoom, enqueue_parse
from ingest.poll.fetch import conditional_get
from ingest.poll.hostslots import HostSlots, PollGate
from ingest.poll.outage import OutageDetector
from ingest.poll.politeness import HostPacer, is_rate_limited
from ingest.poll.registry import load_feed, move_feed
from ingest.poll.schedule import FeedState, ScheduleRules, decide
from ingest.poll.scheduler import Scheduler
from ingest.poll.urlguard import pacing_host
from ingest.settings import Settings

__all__ = ["Poller", "rules_from"]

log = logging.getLogger(__name__)

# Longest an idle poller waits before it looks at the schedule again.
IDLE_LOOK_SECONDS = 0.1
# Seconds between two looks at the backpressure state (#20).
BUSY_LOOK_SECONDS = 0.25


def rules_from(settings: Settings) -> ScheduleRules:
    return ScheduleRules(
        default_interval=settings.default_interval, min_interval=settings.min_interval,
        max_interval=settings.max_interval, max_backoff=settings.max_backoff,
        max_consecutive_errors=settings.max_consecutive_errors,
        redirect_trust_count=settings.redirect_trust_count,
        push_poll_interval=settings.push_poll_interval,
    )


class Poller:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        pool: ArqRedis,
        session: aiohttp.ClientSession,
        scheduler: Scheduler,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self.session = session
        self.scheduler = scheduler
        self.completions = CompletionBatcher(scheduler)
        self.keys = Keys.for_settings(settings)
        self.queue_room = QueueRoom(pool, self.keys, settings.queue_bound)
        self.rules = rules_from(settings)
        self.pacer = HostPacer(settings.per_host_concurrency, settings.host_min_delay,
                               settings.host_cooldown_cap)
        self.gate = PollGate(HostSlots.from_settings(redis, self.keys, settings))
        # The session's connector holds at most `global_concurrency` requests at once and
        # queues the rest (a future, a timeout context, a shuffle of its waiting hosts per
        # release); with `poll_batch` above that, half the polls waited there. Waiting
        # here for the same number costs a poll less (#21); the connector then rarely queues.
        self.fetch_slots = HostPacer(settings.global_concurrency, 0.0, 0.0)
        self.outage = OutageDetector()
        self.rng = random.Random()
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        # A full poller claims again once this many polls have ended, not after each one:
        # a claim costs two round trips whatever its size (#21).
        self.refill = max(1, settings.poll_batch // 8)
        self.room = asyncio.Event()  # set when that much room is free
        self.uncounted_crashes = 0  # poll_crashes not yet written (Redis was down)
        self.busy: str | None = None  # why the service takes no work now (backpressure), or None
        self._busy_next = 0.0  # monotonic time of the next look at the backpressure state

    async def run(self, stop: asyncio.Event) -> None:
        last_prune = time.monotonic()
        with contextlib.suppress(RedisError, OSError):
            await self.gate.refresh()  # a fresh view first: else every poll asks Redis
        gate = asyncio.create_task(self.gate.keep_fresh(stop))
        try:
            while not stop.is_set():
                if not await self.queue_room.wait(stop):
                    break
                if await self._held_back(stop):
                    continue
                room = self.settings.poll_batch - len(self.in_flight)
                claimed: list[tuple[str, dict[bytes, bytes]]] = []
                if room >= self.refill or (room > 0 and not self.in_flight):
                    claimed = await self.scheduler.claim_with_state(
                        time.time(), self.settings.lease_seconds, room)
                for feed_id, raw in claimed:
                    state = FeedState.from_hash(feed_id, raw) if b"url" in raw else None
                    self.in_flight[feed_id] = asyncio.create_task(self._poll_one(feed_id, state))
                if time.monotonic() - last_prune > 60:
                    self.pacer.prune()
                    last_prune = time.monotonic()
                if not claimed:
                    await self._idle(stop)
        finally:
            await self._shutdown()
            gate.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gate

    async def _held_back(self, stop: asyncio.Event) -> bool:
        """Backpressure (#20): while the item stream is near its cap, claim nothing. Feeds
        stay due in the schedule (their leases untouched); fetches in flight finish; the
        state is read at most every BUSY_LOOK_SECONDS, so it costs no round trip per claim."""
        now = time.monotonic()
        if now >= self._busy_next:
            self._busy_next = now + BUSY_LOOK_SECONDS
            reason = await read_busy(self.redis, self.keys)
            if reason and not self.busy:
                log.warning("backpressure: not claiming feeds: %s", reason)
            elif self.busy and not reason:
                log.warning("backpressure over: claiming feeds again")
            self.busy = reason
        if self.busy is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BUSY_LOOK_SECONDS)
        return True

    def _forget(self, feed_id: str) -> None:
        """A poll has ended: room for the next claim. Called by the poll's own task as its
        last step (a done callback per task cost a closure, a callback and a loop turn per
        poll, #21, decision 165); a task cancelled before it ran never gets here, which only
        _shutdown does, and it no longer reads in_flight then."""
        self.in_flight.pop(feed_id, None)
        if self.settings.poll_batch - len(self.in_flight) >= self.refill:
            self.room.set()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for room (`refill` polls ending) or for the next due time (at most IDLE_LOOK_SECONDS).

        Another process may make a feed due sooner than the schedule said (`ingest
        add`, `ingest enqueue`, the API, a push hub gone quiet): looking again every
        0.1 s notices it within that, for one ZRANGE of a single entry each time.
        """
        if self.settings.poll_batch - len(self.in_flight) < self.refill:
            # One event rather than asyncio.wait() over every poll in flight (a callback
            # added to and removed from each of up to poll_batch tasks per wake-up).
            self.room.clear()
            waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.room.wait()),
                                                 asyncio.ensure_future(stop.wait())}
            await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            return
        due_in = await self.scheduler.next_due_in(time.time())
        pause = IDLE_LOOK_SECONDS if due_in is None else min(max(due_in, 0.01), IDLE_LOOK_SECONDS)
        try:
            await asyncio.wait_for(stop.wait(), pause)
        except TimeoutError:
            pass

    async def _shutdown(self) -> None:
        if self.in_flight:
            log.info("stopping: %d fetches in flight, waiting up to %.0f s",
                     len(self.in_flight), self.settings.shutdown_grace)
            await asyncio.wait(list(self.in_flight.values()), timeout=self.settings.shutdown_grace)
        unfinished = list(self.in_flight)
        for task in self.in_flight.values():
            task.cancel()
        await asyncio.gather(*self.in_flight.values(), return_exceptions=True)
        released = await self.scheduler.release(unfinished, time.time())
        if released:
            log.info("released %d leases", released)

    async def _poll_one(self, feed_id: str, state: FeedState | None) -> None:
        feed_context(feed_id, state.url if state else "")  # JSON log lines name the feed
        try:
            await self.poll_feed(feed_id, state)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one feed's surprise must not stop the loop
            log.exception("polling feed %s failed unexpectedly", feed_id)
            await self._count_crash()
        finally:
            self._forget(feed_id)

    async def _count_crash(self) -> None:
        """Count one crash in <ns>:stats. When Redis is what failed (#12: this call
        raised again, 48 "Task exception was never retrieved" in one run), the count
        is kept here and written with the next crash or poll once Redis is back."""
        self.uncounted_crashes += 1
        await self._flush_crashes()

    async def _flush_crashes(self) -> None:
        count, self.uncounted_crashes = self.uncounted_crashes, 0
        if not count:
            return
        try:
            await self.redis.hincrby(self.keys.stats, "poll_crashes", count)
        except (RedisError, OSError) as e:
            self.uncounted_crashes += count
            log.warning("%d poll crashes not counted yet: Redis: %s", self.uncounted_crashes, e)

    async def poll_feed(self, feed_id: str, state: FeedState | None = None) -> None:
        """Fetch one claimed feed and record the outcome (the lease must be ours)."""
        if state is None:
            state = await load_feed(self.redis, self.keys, feed_id)
        if state is None or state.disabled_reason:
            await self.scheduler.complete(feed_id, None, {})
            return
        host = pacing_host(state.url)
        async with self.pacer.slot(host), self.gate.slot(host), self.fetch_slots.slot(""):
            started = time.monotonic()
            result = await conditional_get(self.session, state.url, self.settings,
                                           etag=state.etag or None,
                                           last_modified=state.last_modified or None)
        now = time.time()
        if isinstance(result, FetchFailed):
            if result.network:
                self.outage.network_failure(host, now)
            if result.status is not None and is_rate_limited(result.status):
                self.pacer.cool_down(host, result.retry_after or self.settings.host_cooldown_cap)
        else:
            self.outage.success(now)
        body_hash = None
        if isinstance(result, Fetched):
            body_hash = hashlib.blake2b(result.body, digest_size=16).hexdigest()
        decision = decide(now, state, result, self.rules, self.rng,
                          outage=self.outage.active(now), body_hash=body_hash)
        if decision.parse and isinstance(result, Fetched):
            spec = FeedSpec(feed_id=feed_id, url=state.url, title=state.title, tags=state.tags,
                            full_text=state.full_text)
            await enqueue_parse(self.pool, spec, result)  # before recording: at least once
            self.queue_room.queued()
        await record_fetch(self.redis, self.keys, result, time.monotonic() - started, decision.parse)
        if not await self.completions.complete(feed_id, decision.next_due, decision.updates,
                                               _counter(result, decision.parse)):
            log.warning("feed %s: lease lost before the fetch finished; outcome dropped", feed_id)
            return
        if decision.new_url:
            await move_feed(self.redis, self.keys, feed_id, decision.new_url)
        if decision.events:
            await publish_events(self.redis, self.keys, decision.events)
        if self.uncounted_crashes:  # Redis answers again: write what it missed
            await self._flush_crashes()


def _counter(result: object, parsed: bool) -> str:
    if isinstance(result, FetchFailed):
        return "polls_failed"
    if isinstance(result, Fetched):
        return "polls_changed" if parsed else "polls_unchanged_body"
    return "polls_not_modified"
