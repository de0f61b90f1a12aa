"""Connections to Redis: the data (one server or a Redis Cluster) and arq's queue.

One place turns Settings into clients so that the embedded socket, URLs, the
cluster mode and the "is it running?" error message are decided once.

Two connections where users need them (#13): `redis_url` holds the data
(stream, channels, dedup state, cluster index, registry, schedule), which is
what outgrows one node; `queue_redis_url` (default: the same server) holds
arq's queue and the worker liveness notes beside it, which are small and
transient, and always a single Redis: arq speaks to nothing else.

With `redis_cluster` the data client is redis-py's `RedisCluster`. It is handed
around typed as `redis.asyncio.Redis`: the code calls only what both offer
(single-key commands, scripts whose keys share a slot, non-transactional
pipelines, `mget_any`), and the cluster test suite (tests/test_redis_cluster.py)
runs the paths that differ. Where a single Redis could use MULTI, `atomic_pipeline`
gives a plain pipeline on a cluster; docs/redis.md says which steps lose their
atomicity there and why that is safe.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import hiredis
import redis.asyncio as aioredis
import redis.asyncio.connection as aioconn
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, RedisError, ResponseError

from ingest.errors import RedisUnavailable
from ingest.jobcodec import deserialize_job, serialize_job
from ingest.keys import Keys
from ingest.settings import Settings

__all__ = [
    "arq_redis_settings",
    "atomic_pipeline",
    "connect",
    "connect_arq",
    "connect_queue",
    "connection_class_for",
    "data_client",
    "eval_many",
    "is_cluster",
    "mget_any",
    "pack_with_hiredis",
    "publish",
    "raw_replies",
    "ScriptCall",
    "run_script",
    "run_scripts",
]


def arq_redis_settings(settings: Settings) -> RedisSettings:
    rs = RedisSettings.from_dsn(settings.effective_queue_url)
    rs.conn_retries = 2
    return rs


def _unreachable(settings: Settings, e: Exception, url: str | None = None) -> RedisUnavailable:
    if settings.embedded and not (url and url != settings.effective_redis_url):
        return RedisUnavailable(
            f"the embedded Redis at {settings.embedded_socket} is not running "
            f"(start the service with `ingest run`, or set INGEST_REDIS_URL): {e}"
        )
    what = "Redis Cluster" if settings.redis_cluster and url is None else "Redis"
    return RedisUnavailable(f"cannot reach {what} at {url or settings.redis_url}: {e}")


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's Python loop.

    redis-py's synchronous client already packs with hiredis when it is installed
    (its HiredisRespSerializer, whose rules this repeats); its asyncio client
    does not. A delivery or cluster-index call carries hundreds of arguments,
    and packing them one by one in Python cost ~60 µs per stored entry (#9).
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        try:
            return [hiredis.pack_command(args)]
        except TypeError as e:
            raise DataError(str(e)) from e


class _Connection(_HiredisPacking, aioconn.Connection):
    pass


class _UnixConnection(_HiredisPacking, aioconn.UnixDomainSocketConnection):
    pass


class _SSLConnection(_HiredisPacking, aioconn.SSLConnection):
    pass


def connection_class_for(url: str) -> type[aioconn.AbstractConnection]:
    """The asyncio connection class for a Redis URL (its scheme), packing with hiredis."""
    return {"unix": _UnixConnection, "rediss": _SSLConnection}.get(urlsplit(url).scheme, _Connection)


_PACKED_BY_HIREDIS: dict[type[aioconn.AbstractConnection], type[aioconn.AbstractConnection]] = {
    aioconn.Connection: _Connection,
    aioconn.UnixDomainSocketConnection: _UnixConnection,
    aioconn.SSLConnection: _SSLConnection,
}


async def pack_with_hiredis(client: aioredis.Redis) -> None:
    """Make a client built elsewhere (arq's pool: arq picks its connection class) pack
    with hiredis from now on; the connections it holds are closed, new ones open as needed.

    Its worker sends every job's data through that pool (workers/context.py), and
    redis-py's Python packing was ~5% of a worker's CPU in the mixed phase (#21). A
    connection class of another kind (Sentinel's) is left as it is."""
    pool = client.connection_pool
    packed = _PACKED_BY_HIREDIS.get(pool.connection_class)
    if packed is None:
        return
    await pool.disconnect()
    pool.reset()  # type: ignore[no-untyped-call]
    pool.connection_class = packed


def _single(url: str, **options: Any) -> aioredis.Redis:
    """A client of one Redis whose connections pack with hiredis."""
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    # from_url lets the URL's scheme pick the connection class over any given: set it after.
    client.connection_pool.connection_class = connection_class_for(url)
    return client


class _RememberingCluster(RedisCluster):
    """A RedisCluster that remembers every node it has seen, to find the cluster again.

    redis-py 5.3 drops a node that failed a command from its startup nodes, and
    several commands failing at once during a failover can leave it none: every later
    command then fails with "Redis Cluster cannot be connected ... None" although the
    promoted replicas serve every slot (seen in tests/test_redis_cluster.py). Before
    looking the slots up again it is given back every node it has known.
    """

    _known: set[tuple[str, int]]

    async def initialize(self) -> RedisCluster:
        manager = self.nodes_manager
        known: set[tuple[str, int]] = getattr(self, "_known", set())
        for host, port in known - {(n.host, n.port) for n in manager.startup_nodes.values()}:
            node = ClusterNode(host, port, **manager.connection_kwargs)
            manager.startup_nodes[node.name] = node
        client = await super().initialize()
        self._known = known | {(str(n.host), int(n.port)) for n in manager.nodes_cache.values()}
        return client


def data_client(settings: Settings, **options: Any) -> aioredis.Redis:
    """The client for the data, not yet connected: a Redis, or a RedisCluster typed as one."""
    if settings.redis_cluster:
        # Reads go to masters (a replica may lag behind a just-delivered item).
        return cast(aioredis.Redis, _RememberingCluster.from_url(settings.redis_url, **options))
    return _single(settings.effective_redis_url, **options)


def is_cluster(client: aioredis.Redis) -> bool:
    return isinstance(client, RedisCluster)


def atomic_pipeline(client: aioredis.Redis) -> Any:
    """MULTI/EXEC on one Redis; a plain pipeline on a cluster, which has no cross-slot MULTI."""
    return client.pipeline(transaction=not is_cluster(client))


async def mget_any(client: aioredis.Redis, keys: Sequence[str | bytes]) -> list[bytes | None]:
    """MGET of keys in any slots (a cluster client splits it by slot, in parallel)."""
    if not keys:
        return []
    if is_cluster(client):
        return cast(list[bytes | None], await cast(RedisCluster, client).mget_nonatomic(list(keys)))
    return cast(list[bytes | None], await client.mget(list(keys)))


async def connect(settings: Settings) -> aioredis.Redis:
    """A client for the data; fails fast with a message saying what to start."""
    client = data_client(settings, decode_responses=False)
    try:
        await client.ping()
    except (RedisError, OSError) as e:
        await client.aclose()
        raise _unreachable(settings, e) from e
    return client


async def connect_queue(settings: Settings) -> aioredis.Redis:
    """A plain client for the queue's Redis (worker liveness notes live beside arq's keys)."""
    url = settings.effective_queue_url
    client = _single(url, decode_responses=False)
    try:
        await client.ping()
    except (RedisError, OSError) as e:
        await client.aclose()
        raise _unreachable(settings, e, url) from e
    return client


async def connect_arq(settings: Settings) -> ArqRedis:
    """An arq pool on the queue's Redis whose default queue is the namespaced one."""
    try:
        return await create_pool(
            arq_redis_settings(settings), default_queue_name=Keys.for_settings(settings).queue,
            job_serializer=serialize_job, job_deserializer=deserialize_job,
        )
    except (RedisError, OSError) as e:
        raise _unreachable(settings, e, settings.effective_queue_url) from e


ScriptCall = tuple[str, Sequence[str | bytes], Sequence[Any]]  # a script's text, its keys, its args


@functools.lru_cache(maxsize=256)
def _sha(script: str) -> str:
    """A script's EVALSHA name; the texts are a handful of constants, each hashed once."""
    return hashlib.sha1(script.encode()).hexdigest()


async def eval_many(client: aioredis.Redis, script: str,
                    calls: Sequence[tuple[Sequence[str | bytes], Sequence[Any]]]) -> list[Any]:
    """One script run per (keys, args), pipelined: `run_scripts` with one text.

    For scripts whose calls touch keys of different slots (a feed hash each)."""
    return await run_scripts(client, [(script, keys, args) for keys, args in calls])


async def run_scripts(client: aioredis.Redis, calls: Sequence[ScriptCall], *,
                      raise_on_error: bool = True) -> list[Any]:
    """Several script calls, each (text, keys, args), pipelined: one round trip per server
    (on a cluster the pipeline is split by node). A call's error raises (the first, after
    every call ran), or with `raise_on_error=False` is returned in that call's place.

    A redis-py pipeline holding registered scripts first asks SCRIPT EXISTS for them,
    a round trip of its own, every time it runs. Here each call is an EVALSHA, and only
    the calls the server answers NOSCRIPT (a restarted or new server, a promoted
    replica) are run again, after their scripts are loaded: a call that ran is never
    run twice."""
    if not calls:
        return []
    results: list[Any] = [NoScriptError()] * len(calls)
    for attempt in range(2):
        todo = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if not todo:
            break
        if attempt:
            for text in {calls[i][0] for i in todo}:
                await client.script_load(text)  # a cluster client loads it on every master
        async with client.pipeline(transaction=False) as pipe:
            for i in todo:
                text, keys, args = calls[i]
                pipe.execute_command("EVALSHA", _sha(text), len(keys), *keys, *args)
            for i, r in zip(todo, await pipe.execute(raise_on_error=False), strict=True):
                results[i] = r
    for r in results:
        if raise_on_error and isinstance(r, Exception):
            raise r
    return results


async def run_script(client: Any, call: ScriptCall) -> Any:
    """One script call on its own: redis-py's Script (EVALSHA, EVAL once on NOSCRIPT), on
    one Redis or a cluster; for a call that is not batched with others (`run_scripts`)."""
    script, keys, args = call
    return await client.register_script(script)(keys=keys, args=args)


async def raw_replies(client: aioredis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Commands to one Redis in one round trip, each reply as hiredis reads it.

    What a pipeline does, without redis-py's per-command work (a command stack, a
    response callback looked up per reply, HGETALL's reply turned into a dict in
    Python): ~4 us less per command on a poll's claim (#21). Replies are raw (HGETALL: a
    flat list of field, value). An error reply raises (as `execute()` does by default)
    and, like any failure or a cancel halfway, drops the connection, whose unread
    replies would follow the next command; an error inside an EXEC's array raises
    after every reply is read. One Redis only: not for a cluster client.
    """
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        try:
            packed = b"".join([hiredis.pack_command(command) for command in commands])
        except TypeError as e:
            raise DataError(str(e)) from e
        await conn.send_packed_command(packed)
        if _reads_direct(conn):
            replies = await _read_direct(conn, len(commands))
        else:
            replies = [await conn.read_response() for _ in commands]
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)
    for command, reply in zip(commands, replies, strict=True):
        # A command that failed inside MULTI/EXEC is an error in EXEC's array, not an
        # error reply: raised too, as redis-py's transaction raises it (the others ran).
        if command[0] == "EXEC" and isinstance(reply, list):
            for inner in reply:
                if isinstance(inner, Exception):
                    raise inner
    return replies


_HIREDIS_PARSER: type | None
_NOT_ENOUGH_DATA: object
try:  # redis-py's private hiredis parser: read its replies without read_response (#21)
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _AsyncHiredisParser as _HIREDIS_PARSER
except ImportError:  # pragma: no cover - another redis-py: read_response, as before
    _HIREDIS_PARSER = None
    _NOT_ENOUGH_DATA = object()


def _reads_direct(conn: Any) -> bool:
    """Can `_read_direct` read this connection's replies as `read_response` would? Only
    with redis-py's hiredis parser and nothing `read_response` adds per reply: no socket
    timeout (its async_timeout), no health checks (their next time), RESP2."""
    return (_HIREDIS_PARSER is not None and type(conn._parser) is _HIREDIS_PARSER  # noqa: SLF001
            and conn.socket_timeout is None and not conn.health_check_interval
            and conn.protocol in (2, "2", None))


async def _read_direct(conn: Any, count: int) -> list[Any]:
    """`count` replies taken from the hiredis reader as it parses them, more bytes read
    from the socket only when it has none whole: `read_response`'s work for each reply
    (a timeout check, the host's name formatted, two awaits) was ~2 us of the ~4 us a
    claimed feed's two commands cost to read (#21). Error replies raise as there."""
    parser = conn._parser  # noqa: SLF001
    reader = parser._reader  # noqa: SLF001
    if reader is None:
        raise RedisConnectionError("Connection closed by server.")
    replies: list[Any] = []
    gets = reader.gets
    try:
        while len(replies) < count:
            reply = gets()
            if reply is _NOT_ENOUGH_DATA:
                await parser.read_from_socket()
                continue
            if isinstance(reply, RedisConnectionError):
                raise reply
            if isinstance(reply, list) and reply and isinstance(reply[0], RedisConnectionError):
                raise reply[0]
            if isinstance(reply, ResponseError):
                raise reply from None
            replies.append(reply)
    except OSError as e:
        raise RedisConnectionError(f"Error while reading from Redis : {e.args}") from e
    return replies


def publish(client: Any, keys: Keys, channel: str, message: bytes) -> Any:
    """PUBLISH on one Redis; SPUBLISH on a cluster (sharded Pub/Sub: the message goes to
    the shard of its channel only, not over the bus to every node)."""
    if keys.cluster:
        return client.execute_command("SPUBLISH", channel, message)
    return client.publish(channel, message)
