"""A changed document's worker CPU, each of #21's mixed-phase changes on and off, in one process.

bench/bench_mixed.py runs one tree per child process, the trees taking turns; on a
machine shared with other work its runs spread by ±10%, more than a change worth
1-4% can show. Here one process runs the farm's round 0 and round 1 (as
bench_mixed does) and switches the worker's code paths per document, so every
variant sees the same load, the same Redis and the same kind of documents; the
variants take turns in a rotating order (a document's position in the rotation
does not favour a variant). Reported: CPU µs of this process per changed document
(mean and median) for each variant.

Variants (each adds one change to the one before):

  before   redis-py's Python packing, the document's last scripts (the entries' map
           and the counters) in a redis-py pipeline (which asks SCRIPT EXISTS first,
           a round trip of its own), the WebSub note's HGET in a round trip of its
           own (as workers/tasks.py sent it), every entry's key of before #13 read,
           the byte scans without their pre-checks
  packed   + commands packed by hiredis (arq's pool, ingest/wakeup.py)
  scripts  + those scripts and the note in one round trip (ingest.redis_conn.run_scripts)
  states   + no key of before #13 read for skipped entries (Deliverer.states in_hash)
  scans    + the byte scans' pre-checks (workers/xmlguard.py)

    .venv/bin/python bench/bench_mixed_paired.py --feeds 1200
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.farm import FarmSpec  # noqa: E402
from bench.paired import documents, farm_arguments, job_setup, on_private_redis, print_cpu  # noqa: E402

VARIANTS = ("before", "packed", "scripts", "states", "scans")


def _patch(owner: Any, **attributes: Any) -> None:
    """Switch a module's or class's functions (the variant's code paths)."""
    for name, value in attributes.items():
        setattr(owner, name, value)


def _plain_cut(body: bytes, limit: int) -> tuple[bytes, int]:
    """cut_after_entries without its "<" count (the regex scan every time)."""
    from workers import xmlguard

    if limit <= 0 or len(body) < 1024 or xmlguard.scannable_bytes(body) is not body:
        return body, 0
    count = sum(1 for _ in xmlguard._ENTRY_START.finditer(body))
    return (body, 0) if count <= limit else xmlguard.cut_after_entries(body, limit)


def _plain_defuse(body: bytes) -> bytes:
    """defuse_char_refs without its "#" check."""
    from workers import xmlguard

    if b"&#" not in body:
        return body

    def swap(match: Any) -> bytes:
        code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
        return xmlguard._REPLACEMENT_REF if xmlguard._no_character(code) else bytes(match.group(0))

    return xmlguard._CHAR_REF.sub(swap, body)


async def _run(url: str, spec: FarmSpec) -> dict[str, list[float]]:
    import redis.asyncio as aioredis

    import workers.parse as parse
    import workers.pipeline as pipeline
    from ingest.deliver.publish import Deliverer
    from ingest.models import FeedSpec
    from ingest.redis_conn import ScriptCall, pack_with_hiredis
    from workers.article.fetch import ArticleFetcher
    from workers.clusters.index import ClusterIndex

    settings, keys, options, limits, session = job_setup()
    plain = aioredis.Redis.from_url(url)
    await plain.flushall()
    packed = aioredis.Redis.from_url(url)
    await pack_with_hiredis(packed)

    def parts(client: aioredis.Redis) -> tuple[Deliverer, ClusterIndex, ArticleFetcher]:
        deliverer = Deliverer(client, keys, settings.stream_xadd_cap, settings.item_retention_seconds,
                              settings.max_versions, settings.stream_record)
        return deliverer, ClusterIndex.from_settings(client, keys, settings), ArticleFetcher(session, client,
                                                                                              keys, settings)

    one_trip = pipeline._in_one_round_trip
    states = Deliverer.states
    cut, defuse = vars(parse)["cut_after_entries"], vars(parse)["defuse_char_refs"]

    async def pipelined(deliverer: Deliverer, calls: Sequence[ScriptCall]) -> None:
        note = [c for c in calls if b"push_expires_at" in c[0].encode()]
        async with deliverer.redis.pipeline(transaction=False) as pipe:
            for script, script_keys, args in calls:
                if (script, script_keys, args) not in note:
                    await pipe.register_script(script)(keys=script_keys, args=args)
            await pipe.execute()
        for _, script_keys, _ in note:  # workers/tasks.py read the feed's push lease apart
            await deliverer.redis.hget(str(script_keys[0]), "push_expires_at")  # type: ignore[misc]

    async def every_old_key(self: Deliverer, feed_id: str, item_ids: Sequence[str],
                            in_hash: Any = ()) -> Any:
        return await states(self, feed_id, item_ids)

    on_plain, on_packed = parts(plain), parts(packed)
    setups = {  # variant -> (client's parts, finish, states, scans)
        "before": (on_plain, pipelined, every_old_key, (_plain_cut, _plain_defuse)),
        "packed": (on_packed, pipelined, every_old_key, (_plain_cut, _plain_defuse)),
        "scripts": (on_packed, one_trip, every_old_key, (_plain_cut, _plain_defuse)),
        "states": (on_packed, one_trip, states, (_plain_cut, _plain_defuse)),
        "scans": (on_packed, one_trip, states, (cut, defuse)),
    }
    base = "http://127.0.0.1:1"
    specs = [FeedSpec(f"farm{n}", f"{base}/feed/{n}.xml") for n in range(spec.feeds)]
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for round_, n, name, fetched in documents(spec, VARIANTS, base):
            (deliverer, clusters, articles), finish, read_states, (cut_fn, defuse_fn) = setups[name]
            _patch(pipeline, _in_one_round_trip=finish)
            _patch(Deliverer, states=read_states)
            _patch(parse, cut_after_entries=cut_fn, defuse_char_refs=defuse_fn)
            started = time.process_time()
            await pipeline.process_document(deliverer, specs[n], fetched, clusters, options, limits, articles)
            if round_:
                cpu[name].append(time.process_time() - started)
    finally:
        _patch(pipeline, _in_one_round_trip=one_trip)
        _patch(Deliverer, states=states)
        _patch(parse, cut_after_entries=cut, defuse_char_refs=defuse)
        await session.close()
        await plain.aclose()
        await packed.aclose()
    return cpu


def main() -> None:
    args, spec = farm_arguments(__doc__.splitlines()[0] if __doc__ else None, 1200, VARIANTS)
    cpu = on_private_redis("bench-paired-", lambda url: _run(url, spec))
    print_cpu(cpu, VARIANTS, f"{args.feeds} changed documents ({args.new_items} new items among {args.items}), "
              f"worker CPU µs per document")


if __name__ == "__main__":
    main()
