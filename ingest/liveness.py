"""Worker liveness in Redis: heartbeats, job ownership, and the reaper of dead workers' jobs.

Why: arq marks a running job with `arq:in-progress:<id>`, which expires only
`job_timeout + 10` s after the job started. A worker that dies mid-job (SIGKILL,
OOM, a machine gone) would hold its jobs that long (~130 s by default) however
fast a new worker starts. So every worker process

* refreshes `<ns>:worker:<id>` (TTL `worker_heartbeat_ttl`) from a thread, so
  a long parse does not look like death;
* notes each job it starts in the hash `<ns>:running` (job id -> worker id) and
  removes it after arq has finished the job;

and a reaper (in every worker, every third of the TTL; and in `ingest run`'s
supervisor the moment one of its worker processes exits) deletes the
in-progress marker of every job whose worker's heartbeat is gone, in one Lua
script, so arq starts the job again on its next poll. Running a job twice is
safe: delivery is one atomic check-and-publish (docs/guarantees.md).

A job whose worker died in the microseconds between arq's marker and our note
is not in the hash: it falls back to arq's own expiry.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from datetime import UTC, datetime

import redis
import redis.asyncio as aioredis

from ingest.keys import Keys

__all__ = ["beat", "beat_sync", "forget_job", "new_worker_id", "note_job", "read_running_note", "reap", "running_note"]


def new_worker_id() -> str:
    """Unique across machines and restarts: host, the process that names it, a random tag."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _payload(jobs: int) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "jobs": jobs,
                       "at": round(time.time(), 3)})


async def beat(client: aioredis.Redis, keys: Keys, worker_id: str, ttl: float, jobs: int = 0) -> None:
    """Mark the worker alive for `ttl` seconds; `jobs` it has finished so far (for operators)."""
    await client.set(keys.worker(worker_id), _payload(jobs), px=int(ttl * 1000))


def beat_sync(client: redis.Redis, keys: Keys, worker_id: str, ttl: float, jobs: int = 0) -> None:
    """The same from a thread (the heartbeat thread has no event loop)."""
    client.set(keys.worker(worker_id), _payload(jobs), px=int(ttl * 1000))


def running_note(worker_id: str, now: datetime | None = None) -> str:
    """Pure: the value of a job's field in `<ns>:running`: who runs it and since when.

    One key serves both readers: the reaper (which worker: is its heartbeat gone?)
    and `ingest enqueue --wait` (where and since when, for a person)."""
    since = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"worker": worker_id, "since": since}, separators=(",", ":"))


def read_running_note(raw: bytes | str | None) -> tuple[str | None, str | None]:
    """Pure: (worker id, since) from a `<ns>:running` value; a bare id was written before #19."""
    if not raw:
        return None, None
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text.startswith("{"):
        return text, None
    note = json.loads(text)
    return note.get("worker"), note.get("since")


async def note_job(client: aioredis.Redis, keys: Keys, job_id: str, worker_id: str) -> None:
    await client.hset(keys.running_jobs, job_id, running_note(worker_id))


async def forget_job(client: aioredis.Redis, keys: Keys, job_id: str, worker_id: str) -> None:
    """Remove the note only if it is still ours (a reaper may have handed the job on)."""
    await client.eval(_FORGET, 1, keys.running_jobs, job_id, worker_id)


# The worker id inside a note (JSON since #19; a bare id before, during a rolling upgrade).
_OWNER = """
local function owner(note)
  if note and string.sub(note, 1, 1) == '{' then return cjson.decode(note)['worker'] end
  return note
end
"""

_FORGET = _OWNER + """
if owner(redis.call('HGET', KEYS[1], ARGV[1])) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

# KEYS[1] = <ns>:running. ARGV[1] = heartbeat key
# prefix, ARGV[2] = arq's in-progress prefix, ARGV[3] = a worker known dead (its heartbeat
# may not have expired yet) or "".
# Atomic, so two reapers never both hand on a job a live worker has just taken.
_REAP = _OWNER + """
local freed = {}
local dead = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local job, worker = entries[i], owner(entries[i + 1])
  local gone = dead[worker]
  if gone == nil then
    gone = (worker == ARGV[3]) or (redis.call('EXISTS', ARGV[1] .. worker) == 0)
    dead[worker] = gone
  end
  if gone then
    redis.call('DEL', ARGV[2] .. job)
    redis.call('HDEL', KEYS[1], job)
    table.insert(freed, job)
  end
end
if ARGV[3] ~= '' then
  redis.call('DEL', ARGV[1] .. ARGV[3])
end
return freed
"""


async def reap(client: aioredis.Redis, keys: Keys, dead_worker: str = "",
               data: aioredis.Redis | None = None) -> list[str]:
    """Free the jobs of workers whose heartbeat is gone (and of `dead_worker`); their ids.

    `client` is the queue's Redis (arq's markers, the notes, the heartbeats); the
    `jobs_reaped` counter goes to `data` (default: the same server), where the stats live.
    """
    prefix = keys.worker("")
    freed = await client.eval(_REAP, 1, keys.running_jobs, prefix, keys.arq_in_progress(""), dead_worker)
    jobs = [j.decode() if isinstance(j, bytes) else str(j) for j in freed]
    if jobs:
        await (data or client).hincrby(keys.stats, "jobs_reaped", len(jobs))
    return jobs
