"""Hostile and broken documents, each on an input written for it (docs/reliability.md).

Every case runs the real pipeline (parse -> normalize -> cap -> deliver) on the
private Redis and checks that the bad part is refused, capped or nulled with
a counted reason, and that the good entries beside it are delivered.
"""

from __future__ import annotations

import resource
import time

import orjson
import pytest
import redis.asyncio as aioredis

from ingest.deliver.publish import Deliverer
from ingest.errors import ParseError
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from tests.helpers import stream_records
from workers.limits import Limits
from workers.parse import parse_feed_bytes
from workers.pipeline import ProcessedFeed, process_document
from workers.xmlguard import entity_refusal


def _items(*bodies: str) -> str:
    return "".join(bodies)


def _item(guid: str, title: str = "Story", extra: str = "", description: str = "Text.") -> str:
    return (f"<item><guid>{guid}</guid><title>{title}</title>"
            f"<description>{description}</description>{extra}</item>")


def _rss(items: str, prolog: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}'
            f'<rss version="2.0"><channel><title>Hostile</title>{items}</channel></rss>').encode()


async def _process(client: aioredis.Redis, body: bytes, limits: Limits | None = None) -> ProcessedFeed:
    keys = Keys("t")
    deliverer = Deliverer(client, keys, 100_000, 3600)
    spec = FeedSpec("hostile", "http://ex.example/feed.xml")
    fetched = Fetched(spec.url, spec.url, 200, {"content-type": "application/rss+xml"}, body,
                      "2026-01-01T00:00:00Z")
    return await process_document(deliverer, spec, fetched, limits=limits)


async def _stats(client: aioredis.Redis) -> dict[str, float]:
    raw = await client.hgetall(Keys("t").stats)  # counters, and float sums of seconds
    return {k.decode(): float(v) for k, v in raw.items()}


# -- entity blow-ups (#12 item 3) and the XML attacks that already held ---------------------

def _quadratic(entity_bytes: int, references: int) -> bytes:
    """One big internal entity referenced many times, its declaration on a line of its own
    (the form feedparser's lenient parser re-declares and expands)."""
    prolog = f'<!DOCTYPE rss [\n<!ENTITY a "{"A" * entity_bytes}">\n]>\n'
    return _rss(_item("q", description="&a;" * references) + _item("ok"), prolog)


def _billion_laughs() -> bytes:
    decls = '<!ENTITY lol0 "lol">\n' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    return _rss(_item("b", description="&lol9;"), f"<!DOCTYPE rss [\n{decls}]>\n")


def test_quadratic_blowup_is_refused_before_parsing_in_bounded_memory() -> None:
    """100 KB x 10,000 would expand to 1 GB (5 GiB of worker before #12)."""
    body = _quadratic(100_000, 10_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ParseError, match="refused before parsing: its entities would expand"):
        parse_feed_bytes(body, {}, "http://ex.example/q.xml")
    elapsed = time.monotonic() - started
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50 * 1024, f"peak memory grew by {grown_kib} KiB"
    assert elapsed < 10  # generous: a bound, not a speed claim (the scan takes ~5 ms)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_entity_blowup_in_utf16_is_refused_too(encoding: str) -> None:
    body = _quadratic(100_000, 100).decode().replace('encoding="utf-8"', f'encoding="{encoding}"')
    assert entity_refusal(body.encode(encoding)) is not None


def test_billion_laughs_and_cycles_and_parameter_entities_are_refused() -> None:
    for body in (_billion_laughs(),
                 _rss(_item("c", description="&a;"),
                      '<!DOCTYPE rss [\n<!ENTITY a "&b;">\n<!ENTITY b "&a;">\n]>\n'),
                 _rss(_item("p"), '<!DOCTYPE rss [\n<!ENTITY % p "<!ENTITY x \'y\'>">\n%p;\n]>\n')):
        with pytest.raises(ParseError, match="refused before parsing"):
            parse_feed_bytes(body, {}, "http://ex.example/x.xml")


def test_ordinary_entity_declarations_still_parse() -> None:
    """RSS 0.91 copies of the Netscape DTD declare HTML entities; they grow nothing."""
    prolog = '<!DOCTYPE rss [\n<!ENTITY nbsp "&#160;">\n<!ENTITY eacute "&#233;">\n]>\n'
    parsed = parse_feed_bytes(_rss(_item("e", title="Caf&eacute;&nbsp;x" * 3) * 2000, prolog), {},
                              "http://ex.example/e.xml")
    assert parsed.entries[0].title.startswith("Café")


async def test_entity_blowup_is_a_counted_parse_error_and_small_entities_pass(
    client: aioredis.Redis,
) -> None:
    with pytest.raises(ParseError):
        await _process(client, _quadratic(100_000, 10_000))
    processed = await _process(client, _quadratic(100, 10))  # 1 KB of growth: fine
    assert sorted(i.guid or "" for i in processed.delivered) == ["ok", "q"]


def test_external_entities_are_never_read(tmp_path: object) -> None:
    """XXE: a SYSTEM entity naming a local file yields no file content."""
    secret = "XXE-SECRET-7f3a"
    path = f"{tmp_path}/secret.txt"
    with open(path, "w") as f:
        f.write(secret)
    prolog = f'<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file://{path}">\n]>\n'
    try:
        parsed = parse_feed_bytes(_rss(_item("x", description="&xxe;"), prolog), {}, "http://ex.example/x.xml")
    except ParseError:
        return  # refused outright is fine too
    assert secret not in orjson.dumps(parsed, default=str).decode()


# -- size caps (#12 item 5) -----------------------------------------------------------------

async def test_entries_beyond_the_cap_are_dropped_and_counted(client: aioredis.Redis) -> None:
    body = _rss(_items(*(_item(f"g{i}") for i in range(30))))
    processed = await _process(client, body, Limits(max_entries_per_document=10))
    assert len(processed.delivered) == 10 and processed.result.entries == 30
    assert (await _stats(client))["entries_dropped"] == 20


async def test_a_100000_item_feed_is_read_only_up_to_the_cap(client: aioredis.Redis) -> None:
    """feedparser never builds the entries past the cap: the document is cut before them
    (1.7 GB of worker for 100,000 items before #12)."""
    body = _rss(_items(*(_item(f"g{i}") for i in range(100_000))))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    processed = await _process(client, body, Limits(max_entries_per_document=1000))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert len(processed.delivered) == 1000 and processed.result.entries == 100_000
    assert sorted(i.guid or "" for i in processed.delivered)[:2] == ["g0", "g1"]
    assert (await _stats(client))["entries_dropped"] == 99_000
    assert grown_kib < 300 * 1024, f"peak memory grew by {grown_kib} KiB"


async def test_oversized_fields_are_cut_and_named_in_truncated(client: aioredis.Redis) -> None:
    limits = Limits(max_text_chars=100, max_content_chars=1000, max_list_items=5)
    enclosures = "".join(f'<enclosure url="http://ex.example/{i}.mp3" type="audio/mpeg" length="1"/>'
                         for i in range(40))
    categories = "".join(f"<category>c{i}</category>" for i in range(40))
    big = _item("g" * 5000, title="T" * 10_000, description="word " * 100_000,
                extra=enclosures + categories)
    processed = await _process(client, _rss(big + _item("small")), limits)
    by_guid = {i.guid[:5] if i.guid else "": i for i in processed.delivered}
    item = by_guid["ggggg"]
    assert len(item.title) <= 100 and len(item.guid or "") <= 100
    assert len(item.content_text) <= 1000 and len(item.summary) <= 1000
    assert len(item.enclosures) == 5 and len(item.categories) == 5
    assert {"title", "guid", "summary", "content_text", "enclosures", "categories"} <= set(item.truncated)
    assert by_guid["small"].truncated == []
    assert (await _stats(client))["items_truncated"] == 1
    records = await stream_records(client, Keys("t"))
    assert max(len(orjson.dumps(r)) for r in records) < 10_000
    assert {r["guid"][:5]: r["truncated"] for r in records}["small"] == []


async def test_a_15_mb_text_node_makes_a_record_within_the_caps(client: aioredis.Redis) -> None:
    body = _rss(_item("huge", description="x" * 15_000_000) + _item("ok"))
    processed = await _process(client, body)
    huge = next(i for i in processed.delivered if i.guid == "huge")
    assert len(huge.content_text) <= Limits().max_content_chars and "content_text" in huge.truncated
    records = await stream_records(client, Keys("t"))
    assert max(len(orjson.dumps(r)) for r in records) < 4 * Limits().max_content_chars


# -- one odd entry costs only itself (#12 item 6) -------------------------------------------

ODD_ENTRIES = {
    "enclosure length 10^30": _item(
        "odd", extra=f'<enclosure url="http://ex.example/a.mp3" type="audio/mpeg" length="{10**30}"/>'),
    "lone surrogate reference in the title": _item("odd", title="Bad &#xD800; char"),
    "lone surrogate reference in the guid": "<item><guid>odd&#xDFFF;</guid><title>Story</title></item>",
    "zone offset -2400": _item("odd", extra="<pubDate>Mon, 06 Jan 2025 10:00:00 -2400</pubDate>"),
    "zone offset +9999": _item("odd", extra="<pubDate>Mon, 06 Jan 2025 10:00:00 +9999</pubDate>"),
}


@pytest.mark.parametrize("case", list(ODD_ENTRIES))
async def test_one_odd_entry_costs_only_itself(client: aioredis.Redis, case: str) -> None:
    body = _rss(_item("before") + ODD_ENTRIES[case] + _item("after"))
    processed = await _process(client, body)
    guids = sorted((i.guid or "")[:3] for i in processed.delivered)
    assert guids[:1] == ["aft"] and "bef" in guids, guids
    assert processed.result.new == len(processed.delivered)
    records = await stream_records(client, Keys("t"))
    assert len(records) == len(processed.delivered)  # every delivered record reached the stream
    odd = [i for i in processed.delivered if (i.guid or "").startswith("odd")]
    if odd:  # kept, made safe (the odd value nulled or replaced)
        assert odd[0].published_at is None
        assert all(e.length is None for e in odd[0].enclosures)
        assert "\ud800" not in odd[0].title
    else:  # dropped alone, counted
        assert (await _stats(client)).get("normalize_errors") == 1


# -- impossible dates (#12 item 7) ----------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "Mon, 06 Jan 0000 10:00:00 GMT", "0000-01-06T10:00:00Z", "Mon, 06 Jan 99999 10:00:00 GMT",
    "99999-01-06T10:00:00Z", "Mon, 06 Jan 2025 10:00:00 +99:99", "2025-01-06T10:00:00+99:99",
    "2025-01-06T10:00:00+24:00", "2025/01/06 10:00:00 +9999",
])
async def test_impossible_dates_are_null(client: aioredis.Redis, raw: str) -> None:
    body = _rss(_item("d", extra=f"<pubDate>{raw}</pubDate>")
                + _item("ok", extra="<pubDate>Mon, 06 Jan 2025 10:00:00 +1400</pubDate>"))
    processed = await _process(client, body)
    dates = {i.guid: i.published_at for i in processed.delivered}
    assert dates == {"d": None, "ok": "2025-01-05T20:00:00Z"}


# -- one bad byte in a UTF-8 feed (#12 item 8) ----------------------------------------------

def test_one_bad_byte_in_utf8_is_replaced_not_redecoded() -> None:
    body = _rss(_item("u", title="Grüße aus Köln", description="Schöne Straße \x00 am Rhein"))
    parsed = parse_feed_bytes(body.replace(b"\x00", b"\xff"), {}, "http://ex.example/u.xml")
    assert parsed.entries[0].title == "Grüße aus Köln"
    assert parsed.entries[0].summary == "Schöne Straße \ufffd am Rhein"


def test_a_latin1_document_declared_utf8_is_still_read_as_latin1() -> None:
    body = _rss(_item("l", title="Grüße aus Köln, schöne Straße")).decode().encode("latin-1")
    parsed = parse_feed_bytes(body, {}, "http://ex.example/l.xml")
    assert parsed.entries[0].title == "Grüße aus Köln, schöne Straße"


async def test_a_lone_surrogate_escape_in_a_json_feed_costs_nothing_else(client: aioredis.Redis) -> None:
    body = (b'{"version":"https://jsonfeed.org/version/1.1","title":"t","items":['
            b'{"id":"odd","title":"a\\ud800b","content_text":"x"},{"id":"ok","content_text":"y"}]}')
    keys = Keys("t")
    deliverer = Deliverer(client, keys, 100_000, 3600)
    spec = FeedSpec("json", "http://ex.example/feed.json")
    fetched = Fetched(spec.url, spec.url, 200, {"content-type": "application/feed+json"}, body,
                      "2026-01-01T00:00:00Z")
    processed = await process_document(deliverer, spec, fetched)
    assert {i.guid: i.title for i in processed.delivered} == {"odd": "a\ufffdb", "ok": ""}
