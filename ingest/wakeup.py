"""A job starts when it is queued, not at a worker's next look at the queue.

arq finds jobs by polling its sorted set every `poll_delay`. An idle worker
therefore starts a job after half a poll on average (a third with two
workers), which was most of the fetch-to-stream latency of a quiet service
(#21: paced p50 21 ms, of which ~17 ms waiting). Polling faster costs Redis
round trips all day long for nothing.

So whoever queues a job that should run now also publishes an empty message
on `<queue>:wake` (one PUBLISH, sent right after the job), and a
`PromptWorker` waits for the next look at its queue on that channel, with
`worker_poll_delay` as the upper bound: a message lost to a reconnect or a
Redis restart costs one poll delay, never a job. A worker also looks at once
when one of its jobs ends if its last look left due jobs behind (it was full,
or read as many as its read limit): it has room for one now. A job queued
since that look was announced, so after other looks the end of a job is no
reason to look (two round trips per job, #21).

Only the wait between two looks and the look itself change; how arq runs jobs
is untouched. A look is one Lua script, one round trip: it reads the queue's
head (arq's ZRANGEBYSCORE) and claims what it found as arq claims a job (not
running anywhere, still queued and due: mark it in progress), where arq takes
the read and then a WATCH, EXISTS, ZSCORE and MULTI/EXEC per job. Every wake
reaches every idle worker and all but one find the job taken, so what a look
costs is paid once per worker per job (#21, decisions 155 and 168).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from arq.connections import ArqRedis, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ingest.redis_conn import pack_with_hiredis, raw_replies

__all__ = ["PromptWorker", "announce", "enqueue_announced", "wake_channel"]

log = logging.getLogger(__name__)

_RESUBSCRIBE_AFTER = 1.0  # seconds after a lost subscription; polling goes on meanwhile

# A look (decision 168): arq's read of the queue's head and its claim (the job is not
# running anywhere, is still queued and due: mark it in progress), in one step (Lua runs
# atomically, as arq's WATCH/MULTI made the claim). KEYS queue; ARGV now (ms), in-progress
# timeout (ms), room (most jobs to claim), read offset, read limit, in-progress key
# prefix, then the ids of the jobs running in this worker (the queue's head holds the
# jobs in progress: a job leaves the queue when it ends). Returns the number of ids
# read, the number of them not running here, then id, score, id, score... of the jobs
# claimed, in the queue's order. A job not claimed runs elsewhere.
# The in-progress keys are not in KEYS: they are named by the ids read here, and arq's
# queue lives on one Redis (never a cluster: ingest/redis_conn.py), where a script may
# touch keys it reads the names of.
_LOOK_SCRIPT = """
local queue, now, timeout, room = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local prefix = ARGV[6]
local mine = {}
for i = 7, #ARGV do mine[ARGV[i]] = true end
local due = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES', 'LIMIT', ARGV[4], ARGV[5])
local claimed, n, others = {}, 0, 0
for i = 1, #due, 2 do
  local id, score = due[i], due[i + 1]
  if not mine[id] then
    others = others + 1
    if n < room and tonumber(score) ~= 0 and redis.call('EXISTS', prefix .. id) == 0 then
      redis.call('PSETEX', prefix .. id, timeout, '1')
      n = n + 1
      claimed[2 * n - 1] = id
      claimed[2 * n] = score
    end
  end
end
table.insert(claimed, 1, others)
table.insert(claimed, 1, #due / 2)
return claimed
"""


def wake_channel(queue_name: str) -> str:
    """The Pub/Sub channel that says "a job is waiting in `queue_name`"."""
    return f"{queue_name}:wake"


async def announce(pool: ArqRedis) -> None:
    """Tell idle workers of `pool`'s default queue to look now.

    Best effort: the job is already queued, and a worker finds it at its next
    poll if this message goes nowhere."""
    with contextlib.suppress(RedisError, OSError):
        await pool.publish(wake_channel(pool.default_queue_name), b"")


async def enqueue_announced(pool: ArqRedis, function: str, *args: Any) -> str:
    """Queue a job to run now, as `pool.enqueue_job(function, *args)` does, and
    announce it: one round trip where arq's WATCH, EXISTS and MULTI/EXEC and the
    PUBLISH took four, for every document the poller hands to the workers.

    The job record, its key, score and expiry are arq's own (`serialize_job` with
    the pool's serializer), so any arq worker runs it. Returns the job id.

    One MULTI/EXEC of PSETEX, ZADD and PUBLISH, sent raw (`raw_replies`), not a Lua
    script (#21, decision 154): a script's argument is copied into Lua and again into
    the command it calls, and for a job holding a fetched body (~80 KB) that cost
    redis-server ~180 µs a job against ~70 µs for the same writes in a transaction.
    The transaction keeps the script's all-or-nothing (no job key without its place
    in the queue, and no queue entry before its key). arq's EXISTS check of the job
    and result keys is left out: it guards ids a caller chooses, and this id is a
    fresh uuid4 (122 random bits), which no key can already hold."""
    job_id = uuid.uuid4().hex
    now = timestamp_ms()
    job = serialize_job(function, args, {}, None, now, serializer=pool.job_serializer)
    queue = pool.default_queue_name
    await raw_replies(pool, [
        ("MULTI",),
        ("PSETEX", job_key_prefix + job_id, pool.expires_extra_ms, job),
        ("ZADD", queue, now, job_id),
        ("PUBLISH", wake_channel(queue), b""),
        ("EXEC",),
    ])
    return job_id


class PromptWorker(Worker):
    """An arq Worker whose wait between two looks at the queue ends early on a wake.

    arq runs `_poll_iteration` in a loop with `poll_delay` between; this worker
    takes the same options; it hands arq a poll delay of 0 and does the waiting
    itself, after each iteration, for at most the `poll_delay` it was given."""

    def __init__(self, *args: Any, poll_delay: float = 0.5, **kwargs: Any):
        super().__init__(*args, poll_delay=0, **kwargs)
        self.idle_poll = float(poll_delay)
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._look_script: AsyncScript | None = None  # the pool exists once arq's main starts
        # The last look may have left due jobs in the queue for want of room here (or past
        # its read limit): the end of a job is then a reason to look again. Otherwise a
        # job queued since is announced, and the end of a job needs no look (two round
        # trips per job, #21).
        self._left_jobs = False

    async def _poll_iteration(self) -> None:
        """arq's iteration (a look at the queue, finished tasks, the health beat) with
        its read and claim as one script call (`look`), then the wait for a wake, at
        most `poll_delay`. In burst mode, or with aborts allowed (neither of which the
        service uses), arq's own iteration runs as arq has it: this copy then touches
        nothing of arq's but what decision 155's claim did."""
        if self.burst or self.allow_abort_jobs:
            self._left_jobs = True  # arq's start_jobs says nothing: look at every job's end
            await super()._poll_iteration()
        else:
            # arq reads nothing while this worker is full; `look` says when it left some
            self._left_jobs = self.allow_pick_jobs and self.job_counter >= self.max_jobs
            if self.allow_pick_jobs and self.job_counter < self.max_jobs:
                await self.look()
            for job_id, task in list(self.tasks.items()):
                if task.done():
                    del self.tasks[job_id]
                    task.result()  # as arq: an error of run_job surfaces here
            await self.heart_beat()
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="arq-wake-listener")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.idle_poll):
                await self._wake.wait()
        self._wake.clear()

    async def look(self, limit: int | None = None) -> int:
        """Read the queue's head and claim what is due there, in one script call: at
        most the room this worker has (`max_jobs` less the jobs it runs), in the
        queue's order, each checked as arq checks it, with arq's job counter and
        semaphore kept as arq keeps them. Returns the number of jobs started.

        arq reads the head (up to `queue_read_limit` ids) in one round trip and claims
        in others; the head holds the jobs in progress here and in the other workers
        too, so every look read their ids again. Those running here are left out by
        the script, the others are found claimed there (#21, decisions 155, 168)."""
        room = self.max_jobs - self.job_counter
        if room <= 0:
            self._left_jobs = True
            return 0
        if self._look_script is None:
            self._look_script = self.pool.register_script(_LOOK_SCRIPT)
        limit = self.queue_read_limit if limit is None else limit
        reply = await self._look_script(
            keys=[self.queue_name],
            args=[timestamp_ms(), int(self.in_progress_timeout_s * 1000), room,
                  getattr(self, "_queue_read_offset", 0),
                  limit, in_progress_key_prefix, *self.tasks],
        )
        read, others, claimed = int(reply[0]), int(reply[1]), reply[2:]
        if read >= limit or (len(claimed) // 2 >= room and others > room):
            self._left_jobs = True  # more may be due past the read limit, or past the room
        for index in range(0, len(claimed), 2):
            job_id, score = claimed[index].decode(), claimed[index + 1]
            await self.sem.acquire()  # free: the room was counted above
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
        return len(claimed) // 2

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        finally:
            if self._left_jobs:
                self._wake.set()  # room for a job the last look left: look now

    async def main(self) -> None:
        if self._pool is None:  # arq's own pool, as arq makes it, packing with hiredis
            self._pool = await create_pool(
                self.redis_settings, job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer, default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms)
            await pack_with_hiredis(self._pool)
        try:
            await super().main()
        finally:
            if self._listener is not None:
                self._listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._listener
                self._listener = None

    async def _listen(self) -> None:
        """Set the wake event on every message of the queue's wake channel, resubscribing
        after a lost connection (polling goes on meanwhile)."""
        channel = wake_channel(self.queue_name)
        while True:
            try:
                async with self.pool.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    self._wake.set()  # whatever was queued while nobody listened
                    async for _ in pubsub.listen():
                        self._wake.set()
            except (RedisError, OSError) as e:
                log.debug("wake channel %s lost (%s); resubscribing in %.0f s",
                          channel, e, _RESUBSCRIBE_AFTER)
            await asyncio.sleep(_RESUBSCRIBE_AFTER)
