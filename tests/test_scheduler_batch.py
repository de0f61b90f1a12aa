"""Claims and batched completions on one Redis, in numbers larger than one call's chunk.

The claim reads each feed's hash in one raw round trip and the completion script
writes the schedule in one ZADD / ZREM per chunk (#21): checked here against what a
feed-by-feed reading of the rules says, with a lease lost in the middle of a batch.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.poll.scheduler import Outcome, Scheduler
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
