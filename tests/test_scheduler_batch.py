"""Claims and batched completions on one Redis, in numbers larger than one call's chunk.

The claim reads each feed's hash in one raw round trip and the completion script
writes the schedule in one ZADD / ZREM per chunk (#21): checked here against what a
feed-by-feed reading of the rules says, with a lease lost in the middle of a batch.
"""

from __future__ import annotations

import random
import time

import pytest
import redis.asyncio as aioredis

import ingest.poll.scheduler as scheduler_module
from ingest.keys import Keys
from ingest.models import NotModified
from ingest.poll.schedule import FeedState, ScheduleRules, decide
from ingest.poll.scheduler import Outcome, Scheduler, _plain_304
from ingest.settings import Settings

FEEDS = 1_300  # more than 1,000 schedule pairs and 500 removals per call


async def test_a_large_batch_claims_and_completes_each_feed_by_its_own_outcome(settings: Settings) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.namespace)
    ours, other = Scheduler(redis, keys, "daemon-a"), Scheduler(redis, keys, "daemon-b")
    try:
        ids = [f"f{i:04d}" for i in range(FEEDS)]
        async with redis.pipeline(transaction=False) as pipe:
            for i, feed_id in enumerate(ids):
                pipe.hset(keys.feed(feed_id), mapping={"url": f"http://127.0.0.1/{i}.xml", "title": f"T{i}"})
                pipe.zadd(keys.schedule, {feed_id: 0})
            await pipe.execute()
        now = time.time()
        claimed = await ours.claim_with_state(now, 60, FEEDS)
        assert [feed_id for feed_id, _ in claimed] == ids
        for i, (_, raw) in enumerate(claimed):
            assert raw == {b"url": f"http://127.0.0.1/{i}.xml".encode(), b"title": f"T{i}".encode(),
                           b"lease": b"daemon-a"}
        # Another daemon took feed 7 meanwhile (its lease ran out): our outcome for it is dropped.
        await redis.hset(keys.feed("f0007"), "lease", "daemon-b")
        outcomes: list[Outcome] = [
            (feed_id, None if i % 2 else now + i, {"last_status": 304, "n": i}, "polls_not_modified")
            for i, feed_id in enumerate(ids)
        ]
        held = await ours.complete_many(outcomes)
        assert held == [feed_id != "f0007" for feed_id in ids]
        scores = dict(await redis.zrange(keys.schedule, 0, -1, withscores=True))
        for i, feed_id in enumerate(ids):
            stored = await redis.hgetall(keys.feed(feed_id))
            if feed_id == "f0007":
                assert stored[b"lease"] == b"daemon-b" and b"last_status" not in stored
                assert scores[feed_id.encode()] == int(now * 1000) + 60_000  # the claim's lease
                continue
            assert b"lease" not in stored and stored[b"n"] == str(i).encode()
            if i % 2:
                assert feed_id.encode() not in scores
            else:
                assert scores[feed_id.encode()] == int((now + i) * 1000)
        assert int(await redis.hget(keys.stats, "polls_not_modified") or 0) == FEEDS - 1
        assert await other.complete_many([("f0007", now, {}, "")]) == [True]
    finally:
        await redis.aclose()


async def test_a_plain_304_stores_the_same_hash_in_its_short_form(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The short form (5 arguments a feed, decision 157) against the long one, on feeds
    whose hashes differ in what they held before: the same fields, values and order."""
    redis = aioredis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.namespace)
    ours = Scheduler(redis, keys, "daemon-a")
    before: list[dict[str, str]] = [
        {"url": "http://127.0.0.1/a.xml"},
        {"url": "http://127.0.0.1/b.xml", "last_status": "200", "consecutive_errors": "3",
         "last_error": "boom", "last_fetch_at": "2026-01-01T00:00:00.000000Z", "etag": '"x"'},
        {"last_error": "", "url": "http://127.0.0.1/c.xml", "consecutive_errors": "0"},
    ]
    at = "2026-12-06T20:00:00.123456Z"
    plain = {"last_fetch_at": at, "last_status": 304, "consecutive_errors": 0, "last_error": ""}
    sent: list[int] = []
    batch = ours._complete_batch  # noqa: SLF001

    async def counted(keys: list[str], args: list[object]) -> object:
        sent.append(len(args))
        return await batch(keys=keys, args=args)

    monkeypatch.setattr(ours, "_complete_batch", counted)
    stored: dict[bool, list[list[tuple[bytes, bytes]]]] = {}
    try:
        for short in (True, False):
            if not short:
                monkeypatch.setattr(scheduler_module, "_plain_304", lambda updates: False)
            ids = [f"{'s' if short else 'l'}{i}" for i in range(len(before))]
            for feed_id, fields in zip(ids, before, strict=True):
                await redis.hset(keys.feed(feed_id), mapping=fields)
                await redis.zadd(keys.schedule, {feed_id: 0})
            await ours.claim_with_state(time.time(), 60, 100)
            now = time.time()
            held = await ours.complete_many([(i, now + 900, dict(plain), "polls_not_modified") for i in ids])
            assert held == [True] * len(ids)
            stored[short] = [list((await redis.hgetall(keys.feed(i))).items()) for i in ids]
            assert int(await redis.zscore(keys.schedule, ids[0]) or 0) == int((now + 900) * 1000)
        assert stored[True] == stored[False]
        assert stored[True][1] == [(b"url", b"http://127.0.0.1/b.xml"), (b"last_status", b"304"),
                                   (b"consecutive_errors", b"0"), (b"last_error", b""),
                                   (b"last_fetch_at", at.encode()), (b"etag", b'"x"')]
        assert sent == [1 + 5 * len(before), 1 + 12 * len(before)]
        assert int(await redis.hget(keys.stats, "polls_not_modified") or 0) == 2 * len(before)
    finally:
        await redis.aclose()


def test_only_a_plain_304_takes_the_short_form() -> None:
    at = "2026-12-06T20:00:00.123456Z"
    assert _plain_304({"last_fetch_at": at, "last_status": 304, "consecutive_errors": 0, "last_error": ""})
    for other in (
        {"last_fetch_at": at, "last_status": 304, "consecutive_errors": 0, "last_error": "", "etag": ""},
        {"last_status": 304, "last_fetch_at": at, "consecutive_errors": 0, "last_error": ""},  # order
        {"last_fetch_at": at, "last_status": "304", "consecutive_errors": 0, "last_error": ""},
        {"last_fetch_at": at, "last_status": 304.0, "consecutive_errors": 0, "last_error": ""},
        {"last_fetch_at": at, "last_status": 304, "consecutive_errors": False, "last_error": ""},
        {"last_fetch_at": at, "last_status": 200, "consecutive_errors": 0, "last_error": ""},
        {"last_fetch_at": at, "last_status": 304, "consecutive_errors": 0, "last_error": "x"},
        {"last_fetch_at": 1.5, "last_status": 304, "consecutive_errors": 0, "last_error": ""},
    ):
        assert not _plain_304(other), other


def test_decide_gives_a_plain_304_the_short_form() -> None:
    state = FeedState(feed_id="f1", url="http://127.0.0.1/a.xml", consecutive_errors=2, last_error="boom")
    result = NotModified(url=state.url, headers={}, fetched_at="2026-12-06T20:00:00.123456Z")
    assert _plain_304(decide(time.time(), state, result, ScheduleRules(), random.Random(1)).updates)
    moved = NotModified(url=state.url, headers={}, fetched_at="2026-12-06T20:00:00.123456Z",
                        permanent_url="http://127.0.0.1/b.xml")
    assert not _plain_304(decide(time.time(), state, moved, ScheduleRules(), random.Random(1)).updates)


# The claim script before decision 163: a ZADD per claimed feed.
_CLAIM_PER_FEED = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], until_ms, id)
end
return ids
"""


@pytest.mark.parametrize("limit", [1, 7, 500, 501, 1_200])
async def test_the_claim_leases_in_one_zadd_as_it_did_feed_by_feed(settings: Settings, limit: int) -> None:
    """Decision 163: the same ids returned and the same schedule after, against the
    per-feed script, on a schedule of due, not yet due and leased feeds."""
    redis = aioredis.Redis.from_url(settings.redis_url)
    rng = random.Random(limit)
    now_ms = int(time.time() * 1000)
    scores = {f"f{i:04d}": now_ms + rng.choice([-5_000, -1, 0, 1, 60_000]) + rng.randrange(3) for i in range(1_100)}
    try:
        schedules = []
        for name, script in (("old", _CLAIM_PER_FEED), ("new", scheduler_module._CLAIM)):  # noqa: SLF001
            key = f"{settings.namespace}:{name}:schedule"
            await redis.zadd(key, scores)
            claimed = await redis.eval(script, 1, key, now_ms, 60_000, limit)
            schedules.append((claimed, await redis.zrange(key, 0, -1, withscores=True)))
        assert schedules[0] == schedules[1]
        due = sum(1 for score in scores.values() if score <= now_ms)
        assert len(schedules[1][0]) == min(limit, due)
        leased = {member for member, score in schedules[1][1] if score == now_ms + 60_000}
        assert set(schedules[1][0]) <= leased
    finally:
        await redis.aclose()
