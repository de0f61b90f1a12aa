"""The feed registry through the CLI: add (with discovery), feeds, remove, enable, import, export."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.poll.registry import find_feed_id
from ingest.settings import Settings
from tests.conftest import REPO
from tests.farm import Farm
from tests.helpers import run_cli


async def feeds_json(settings: Settings) -> list[dict[str, object]]:
    code, out, err = await run_cli(settings, "feeds", "--json")
    assert code == 0, err
    return [orjson.loads(line) for line in out.splitlines()]


async def test_add_fetches_once_and_registers(settings: Settings, farm: Farm) -> None:
    keys = Keys(settings.namespace)
    url = farm.url("feed/a.xml")
    code, out, err = await run_cli(settings, "add", url, "--tag", "asia", "--tag", "wire", "--interval", "300")
    assert code == 0, err
    assert out.startswith("added: ")
    assert len(farm.hits("feed/a.xml")) == 1
    [row] = await feeds_json(settings)
    assert row["url"] == url and row["tags"] == ["asia", "wire"] and row["interval"] == 300
    assert row["status"] == "200" and row["next_due_at"]
    client = aioredis.Redis.from_url(settings.redis_url)
    assert await client.zcard(keys.queue) == 1  # its body waits for a worker
    await client.aclose()
    code, out, _ = await run_cli(settings, "add", url)
    assert out.startswith("already present")
    assert len(await feeds_json(settings)) == 1


async def test_add_discovers_the_feeds_a_page_advertises(settings: Settings, farm: Farm) -> None:
    page = farm.url("page")
    code, out, err = await run_cli(settings, "add", "--list", page)
    assert code == 0, err
    assert out.splitlines() == [f"{farm.url('feed/a.xml')}\trss\tAll news",
                                f"{farm.url('feed/b.xml')}\tatom\tSports"]
    assert await feeds_json(settings) == []
    code, out, err = await run_cli(settings, "add", page)
    assert code == 0, err
    assert {r["url"] for r in await feeds_json(settings)} == {farm.url("feed/a.xml"), farm.url("feed/b.xml")}


async def test_add_refuses_what_it_cannot_fetch(settings: Settings, farm: Farm) -> None:
    code, _, err = await run_cli(settings, "add", farm.url("status/404"))
    assert code == 1 and "HTTP 404" in err and "not added" in err
    code, _, err = await run_cli(settings, "add", "http://10.0.0.1/feed")
    assert code == 1 and "private address" in err
    assert await feeds_json(settings) == []
    code, out, err = await run_cli(settings, "add", "--force", farm.url("status/404"))
    assert code == 0, err
    assert len(await feeds_json(settings)) == 1


async def test_remove_and_enable(settings: Settings, farm: Farm) -> None:
    keys = Keys(settings.namespace)
    await run_cli(settings, "add", farm.url("feed/a.xml"))
    await run_cli(settings, "add", farm.url("feed/b.xml"))
    client = aioredis.Redis.from_url(settings.redis_url)
    feed_a = await find_feed_id(client, keys, farm.url("feed/a.xml"))
    assert feed_a
    await client.hset(keys.feed(feed_a), "disabled_reason", "gone (HTTP 410)")
    await client.zrem(keys.schedule, feed_a)
    [row] = [r for r in await feeds_json(settings) if r["id"] == feed_a]
    assert row["status"] == "disabled" and row["disabled_reason"] == "gone (HTTP 410)"
    code, out, _ = await run_cli(settings, "enable", farm.url("feed/a.xml"))
    assert code == 0 and out.startswith("enabled")
    assert await client.zscore(keys.schedule, feed_a) is not None
    code, out, _ = await run_cli(settings, "remove", feed_a)
    assert code == 0 and feed_a in out
    code, out, _ = await run_cli(settings, "remove", farm.url("feed/b.xml").replace("http://", "HTTP://") + "#top")
    assert code == 0
    assert await feeds_json(settings) == []
    assert await client.zcard(keys.schedule) == 0 and await client.hlen(keys.feed_urls) == 0
    code, _, err = await run_cli(settings, "remove", "nothing-here")
    assert code == 1 and "no feed" in err
    await client.aclose()


async def test_import_export_round_trip(settings: Settings, tmp_path: Path) -> None:
    example = REPO / "config" / "feeds.example.opml"
    code, out, err = await run_cli(settings, "import", str(example))
    assert code == 0, err
    assert out.strip() == "6 added, 0 already present, 0 invalid"
    rows = await feeds_json(settings)
    yonhap = next(r for r in rows if "yna.co.kr" in str(r["url"]))
    assert yonhap["tags"] == ["Asia", "wire"] and yonhap["title"] == "Yonhap News Agency (English)"

    bad = tmp_path / "bad.opml"
    bad.write_text('<opml version="2.0"><body><outline xmlUrl="ftp://x/feed"/>'
                   '<outline xmlUrl="https://en.yna.co.kr/RSS/news.xml"/><outline xmlUrl="http://[::1/"/></body></opml>')
    code, out, _ = await run_cli(settings, "import", str(bad))
    assert out.strip().splitlines()[-1] == "0 added, 1 already present, 2 invalid"

    exported = tmp_path / "out.opml"
    code, _, err = await run_cli(settings, "export", "-o", str(exported))
    assert code == 0, err
    other = dataclasses.replace(settings, namespace="other")
    code, out, _ = await run_cli(other, "import", str(exported))
    assert out.strip().splitlines()[-1] == "6 added, 0 already present, 0 invalid"
    again = {(r["url"], tuple(r["tags"]), r["title"]) for r in await feeds_json(other)}  # type: ignore[arg-type]
    assert again == {(r["url"], tuple(r["tags"]), r["title"]) for r in rows}  # type: ignore[arg-type]


async def test_import_rejects_what_is_not_opml(settings: Settings, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.opml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><opml><body>&lol2;</body></opml>')
    code, _, err = await run_cli(settings, "import", str(bomb))
    assert code == 1 and "not readable OPML" in err
    html = tmp_path / "page.opml"
    html.write_text("<html><body>hi</body></html>")
    code, _, err = await run_cli(settings, "import", str(html))
    assert code == 1 and "not OPML" in err


async def test_a_refused_local_address_says_how_to_allow_it(settings: Settings, farm: Farm) -> None:
    """A newcomer's first `ingest add http://127.0.0.1:.../feed.xml`: the URL guard refuses
    loopback by default; the error says which variable opens it, and nothing is fetched."""
    closed = dataclasses.replace(settings, allow_networks="")
    for command in ("add", "enqueue"):
        code, out, err = await run_cli(closed, command, farm.url("feed/local.xml"))
        assert code == 1 and out == ""
        assert "loopback" in err and "INGEST_ALLOW_NETWORKS=127.0.0.0/8" in err, err
    assert farm.hits("feed/local.xml") == []
    code, _, err = await run_cli(closed, "add", "ftp://127.0.0.1/feed.xml")  # not a network matter
    assert code == 1 and "only http and https" in err and "hint" not in err
