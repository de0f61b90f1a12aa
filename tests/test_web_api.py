"""The JSON API on a real loopback server: auth, feeds, enqueue, items, dead letters, stats, errors."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from ingest.errors import SettingsError
from ingest.settings import Settings
from ingest.web.access import check_exposure, parse_listen
from tests.conftest import INGEST, env_for, free_port
from tests.farm import Farm
from tests.helpers import drain_sink, feed_id_of
from tests.webserver import TOKEN, Api, api_server


@pytest.fixture
async def api(settings: Settings) -> Api:  # type: ignore[misc]
    async with api_server(settings) as served:
        yield served


async def test_token_is_required_except_for_health(api: Api) -> None:
    async with api.http.get(api.url("/api/v1/stats")) as r:
        assert r.status == 401 and "bearer token" in (await r.json())["error"]
    async with api.http.get(api.url("/api/v1/stats"), headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    async with api.http.get(api.url("/healthz")) as r:
        assert r.status == 200
    status, body = await api.call("GET", "/api/v1/stats")
    assert status == 200 and body["stream_length"] == 0
    async with api.http.get(api.url(f"/?token={TOKEN}")) as r:
        assert r.status == 200 and "text/html" in r.content_type


def test_no_token_means_loopback_only() -> None:
    assert parse_listen("") is None
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("8080")
    check_exposure("127.0.0.1", "")
    check_exposure("0.0.0.0", "secret")
    with pytest.raises(SettingsError, match="no api_token"):
        check_exposure("0.0.0.0", "")


@pytest.mark.parametrize("command", ["api", "run"])
def test_the_server_refuses_an_exposed_address_without_token(settings: Settings, command: str) -> None:
    env = env_for(settings) | {"INGEST_LISTEN": f"0.0.0.0:{free_port()}"}
    proc = subprocess.run([*INGEST, command], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0" in proc.stderr and "INGEST_API_TOKEN" in proc.stderr


async def test_feeds_add_list_page_get_change_poll_remove(api: Api, farm: Farm) -> None:
    urls = [farm.url(f"feed/{n}.xml") for n in ("a", "b", "c")]
    for url in urls:
        status, body = await api.call("POST", "/api/v1/feeds", {"url": url, "tags": ["wire"], "interval": 300})
        assert status == 201, body
        assert body["feeds"][0]["feed_id"] == feed_id_of(url)
    status, body = await api.call("POST", "/api/v1/feeds", {"url": urls[0]})
    assert status == 200 and body["feeds"][0]["created"] is False
    # Pages of one, by cursor: every feed once.
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "1", "tag": "wire", **({"cursor": cursor} if cursor else {})}
        status, body = await api.call("GET", "/api/v1/feeds", params=params)
        assert status == 200
        seen += [f["url"] for f in body["feeds"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(urls)
    fid = feed_id_of(urls[0])
    status, body = await api.call("GET", f"/api/v1/feeds/{fid}")
    assert status == 200 and body["url"] == urls[0] and body["recent_errors"] == []
    status, body = await api.call("PATCH", f"/api/v1/feeds/{fid}", {"interval": "often"})
    assert status == 400 and body["field"] == "interval"
    status, body = await api.call("PATCH", f"/api/v1/feeds/{fid}", {"enabled": False, "reason": "test"})
    assert status == 200 and body["state"] == "disabled" and body["disabled_reason"] == "test"
    status, body = await api.call("POST", f"/api/v1/feeds/{fid}/poll")
    assert status == 409 and "disabled" in body["error"]
    status, body = await api.call("PATCH", f"/api/v1/feeds/{fid}", {"enabled": True, "tags": ["x"]})
    assert status == 200 and body["state"] != "disabled" and body["tags"] == ["x"]
    status, body = await api.call("POST", f"/api/v1/feeds/{fid}/poll")
    assert status == 202
    status, body = await api.call("GET", "/api/v1/feeds", params={"state": "disabled"})
    assert status == 200 and body["feeds"] == []
    status, body = await api.call("GET", "/api/v1/feeds", params={"status": "200"})
    assert status == 200 and sorted(f["url"] for f in body["feeds"]) == sorted(urls)
    status, body = await api.call("DELETE", f"/api/v1/feeds/{fid}")
    assert status == 200 and body["removed"] == fid
    status, body = await api.call("GET", f"/api/v1/feeds/{fid}")
    assert status == 404 and fid in body["error"]


async def test_bad_input_names_the_field(api: Api, farm: Farm) -> None:
    cases = [
        ("POST", "/api/v1/feeds", {"interval": 5}, "url"),
        ("POST", "/api/v1/feeds", {"url": "http://10.0.0.1/feed"}, "url"),
        ("POST", "/api/v1/feeds", {"url": farm.url("feed/a.xml"), "tags": "a,b"}, "tags"),
        ("POST", "/api/v1/enqueue", {"urls": []}, "urls"),
        ("POST", "/api/v1/enqueue", {"urls": ["ftp://x/y"]}, "urls"),
        ("POST", "/api/v1/enqueue", {"urls": [farm.url("feed/a.xml")], "wait": "yes"}, "wait"),
        ("POST", "/api/v1/dead/retry", {"kind": "nope"}, "kind"),
        ("POST", "/api/v1/dead/retry", {"ids": ["abc"]}, "ids"),
        ("POST", "/api/v1/dead/retry", {"ids": None}, "ids"),
        ("PATCH", f"/api/v1/feeds/{feed_id_of(farm.url('feed/a.xml'))}", {"interval": 5}, None),
    ]
    for method, path, body, field in cases:
        status, answer = await api.call(method, path, body)
        if field is None:  # (a feed that does not exist: 404 before the body is read)
            assert status == 404, answer
            continue
        assert (status, answer.get("field")) == (400, field), (path, body, answer)
    async with api.http.put(api.url("/api/v1/stats"), headers=api.headers()) as r:
        assert r.status == 405 and "GET" in r.headers["Allow"] and "error" in await r.json()
    for path, params, field in [("/api/v1/items", {"since": "yesterday"}, "since"),
                                ("/api/v1/items", {"limit": "0"}, "limit"),
                                ("/api/v1/items", {"cursor": "!!"}, "cursor"),
                                ("/api/v1/items/search", {}, "q"),
                                ("/api/v1/feeds", {"state": "sad"}, "state"),
                                ("/api/v1/dead", {"kind": "x"}, "kind"),
                                ("/api/v1/items/stream", {"from": "yesterday"}, "from")]:
        status, answer = await api.call("GET", path, params=params)
        assert (status, answer.get("field")) == (400, field), (path, answer)
    status, answer = await api.call("POST", "/api/v1/feeds", data=b"{not json",
                                    headers={"Content-Type": "application/json"})
    assert status == 400 and answer["field"] == "body"
    status, answer = await api.call("POST", "/api/v1/enqueue", data=b"x" * 2_000_000)
    assert status == 413 and "too large" in answer["error"]
    status, answer = await api.call("GET", "/api/v1/nothing-here")
    assert status == 404 and answer["error"]
    status, answer = await api.call("GET", "/api/v1/feeds/0123456789abcdef")
    assert status == 404 and "no feed" in answer["error"]
    status, answer = await api.call("POST", "/api/v1/feeds", {"url": farm.url("status/404")})
    assert status == 422 and "HTTP 404" in answer["error"]


def _rss(name: str, count: int, date: str) -> bytes:
    items = "".join(f"<item><guid>{name}-{i}</guid><title>{name} story {i}</title>"
                    f"<link>http://news.example/{name}/{i}</link><pubDate>{date}</pubDate>"
                    f"<description>Harbour {i} of {name}.</description></item>" for i in range(count))
    return f'<rss version="2.0"><channel><title>{name}</title>{items}</channel></rss>'.encode()


async def _ingest(api: Api, settings: Settings, url: str, new: int) -> None:
    import redis.asyncio as aioredis

    status, body = await api.call("POST", "/api/v1/enqueue", {"urls": [url], "wait": True})
    assert status == 200 and body["results"][0]["new"] == new and not body["results"][0].get("error"), body
    client = aioredis.Redis.from_url(settings.redis_url)
    assert await drain_sink(client, settings) == new
    await client.aclose()


@pytest.mark.usefixtures("worker")
async def test_enqueue_wait_items_pages_search_stats(api: Api, farm: Farm, settings: Settings) -> None:
    # Seven items published at the same second: pages must break the tie by id.
    farm.feeds["ties.xml"] = _rss("ties", 7, "Mon, 06 Jan 2025 10:00:00 GMT")
    farm.feeds["newer.xml"] = _rss("newer", 2, "Sat, 01 Feb 2025 10:00:00 GMT")
    await _ingest(api, settings, farm.url("feed/ties.xml"), 7)
    ids: list[str] = []
    cursor = None
    for page in range(10):
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        status, body = await api.call("GET", "/api/v1/items", params=params)
        assert status == 200
        ids += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if page == 0:  # newer items arrive between pages: nothing shifts, nothing repeats
            await _ingest(api, settings, farm.url("feed/newer.xml"), 2)
        if not cursor:
            break
    assert len(ids) == 7 and len(set(ids)) == 7
    status, body = await api.call("GET", "/api/v1/items", params={"limit": "3"})
    # Both newer items share one second; their order is by id, which depends on the farm's port.
    assert sorted(i["title"] for i in body["items"][:2]) == ["newer story 0", "newer story 1"]
    titles: list[str] = []
    cursor = None
    for _ in range(10):  # search pages (by relevance): every match once
        params = {"q": "harbour", "limit": "4", **({"cursor": cursor} if cursor else {})}
        status, body = await api.call("GET", "/api/v1/items/search", params=params)
        assert status == 200
        titles += [i["title"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(titles) == 9 and len(set(titles)) == 9
    status, body = await api.call("GET", "/api/v1/items/search", params={"q": "harbour 3 ties"})
    assert status == 200 and [i["title"] for i in body["items"]] == ["ties story 3"]
    status, body = await api.call("POST", "/api/v1/enqueue", {"urls": [farm.url("feed/ties.xml")]})
    assert status == 202 and body["jobs"][0]["job_id"]
    status, body = await api.call("GET", "/api/v1/stats")
    assert status == 200 and body["counters"]["items_new"] == 9 and body["stream_length"] == 9
    assert {g["name"] for g in body["groups"]} == {"storage"}


@pytest.mark.usefixtures("worker")
async def test_dead_letters_list_and_retry(api: Api, farm: Farm) -> None:
    farm.feeds["junk.xml"] = b"<html><body>not a feed</body></html>"
    status, body = await api.call("POST", "/api/v1/enqueue", {"urls": [farm.url("plain/junk.xml")], "wait": True})
    assert status == 200 and body["results"][0]["stage"] == "parse"
    status, body = await api.call("GET", "/api/v1/dead", params={"kind": "parse"})
    assert status == 200
    [entry] = body["entries"]
    assert entry["url"] == farm.url("plain/junk.xml")
    status, body = await api.call("POST", "/api/v1/dead/retry", {"ids": ["1-1"]})
    assert status == 404
    status, body = await api.call("POST", "/api/v1/dead/retry", {"ids": [entry["id"]]})
    assert status == 200 and body["retried"] == 1
    status, body = await api.call("GET", "/api/v1/dead")
    assert all(e["id"] != entry["id"] for e in body["entries"])


async def test_poll_all_makes_every_enabled_feed_due(api: Api, farm: Farm) -> None:
    for name in ("a", "b"):
        status, _ = await api.call("POST", "/api/v1/feeds", {"url": farm.url(f"feed/{name}.xml")})
        assert status == 201
    status, body = await api.call("POST", "/api/v1/poll")
    assert status == 202 and body["due_now"] == 2


async def test_redis_down_is_503_and_health_still_answers(settings: Settings) -> None:
    dead = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with api_server(dead) as api:
        for path in ("/api/v1/stats", "/api/v1/feeds", "/metrics", "/api/v1/items/stream"):
            status, body = await api.call("GET", path)
            assert status == 503 and "Redis" in body["error"], (path, body)
        status, body = await api.call("GET", "/healthz")
        assert status == 200
        status, body = await api.call("GET", "/readyz")
        assert status == 503 and "redis" in body["problems"]


async def test_readyz_when_all_answer(api: Api) -> None:
    status, body = await api.call("GET", "/readyz")
    assert status == 200 and body["status"] == "ready"


async def test_cors_is_off_unless_origins_are_listed(settings: Settings) -> None:
    origin = {"Origin": "https://dash.example"}
    async with api_server(settings) as api:
        async with api.http.get(api.url("/api/v1/stats"), headers=api.headers(**origin)) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    listed = dataclasses.replace(settings, cors_origins="https://dash.example")
    async with api_server(listed) as api:
        async with api.http.options(api.url("/api/v1/stats"), headers={
                **origin, "Access-Control-Request-Method": "GET"}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "https://dash.example"
        async with api.http.get(api.url("/api/v1/stats"), headers=api.headers(**origin)) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://dash.example"
        async with api.http.get(api.url("/api/v1/stats"), headers=api.headers(Origin="https://evil.example")) as r:
            assert "Access-Control-Allow-Origin" not in r.headers


async def test_a_feed_added_over_the_api_keeps_its_full_text_mode(api: Api, farm: Farm) -> None:
    url = farm.url("feed/ft.xml")
    status, body = await api.call("POST", "/api/v1/feeds", {"url": url, "full_text": "always"})
    assert status == 201, body
    status, body = await api.call("GET", f"/api/v1/feeds/{feed_id_of(url)}")
    assert status == 200 and body["full_text"] == "always", body
    status, body = await api.call("POST", "/api/v1/feeds", {"url": farm.url("feed/fu.xml"), "full_text": "yes"})
    assert status == 400 and "full_text" in str(body), body
