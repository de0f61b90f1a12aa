"""The OpenAPI document matches the server: every route documented, every documented path served."""

from __future__ import annotations

from ingest.settings import Settings
from ingest.web.app import build_app
from ingest.web.openapi import document
from tests.farm import Farm
from tests.webserver import Api, api_server


def _served(settings: Settings) -> set[tuple[str, str]]:
    app = build_app(settings)
    return {(route.resource.canonical, route.method.lower()) for route in app.router.routes()
            if route.resource is not None and route.method not in ("HEAD", "OPTIONS")}


def _documented() -> set[tuple[str, str]]:
    methods = {"get", "post", "put", "patch", "delete"}
    return {(path, m) for path, item in document()["paths"].items() for m in item if m in methods}


def test_every_route_is_documented_and_every_documented_route_served(settings: Settings) -> None:
    assert _served(settings) == _documented()


def test_every_operation_documents_its_responses_and_path_parameters() -> None:
    for path, item in document()["paths"].items():
        names = {p["name"] for p in item.get("parameters", [])}
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op["summary"] and op["responses"], (path, method)
            assert any(code.startswith("2") for code in op["responses"]), (path, method)
        for part in path.split("/"):
            if part.startswith("{"):
                assert part.strip("{}") in names, path


async def test_the_served_document_is_the_same(settings: Settings) -> None:
    async with api_server(settings) as api:
        assert isinstance(api, Api)
        status, body = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and body == document() and body["openapi"].startswith("3.")


# A valid request for every documented operation ({feed_id} is a registered feed).
_BODIES = {
    ("/api/v1/feeds", "post"): {"url": "FEED_URL"},
    ("/api/v1/feeds/{feed_id}", "patch"): {"interval": 300},
    ("/api/v1/enqueue", "post"): {"urls": ["FEED_URL"]},
    ("/api/v1/dead/retry", "post"): {"kind": "parse"},
}
_QUERIES = {("/api/v1/items/search", "get"): {"q": "story"}}


async def test_every_documented_operation_answers_with_a_documented_status(settings: Settings, farm: Farm) -> None:
    feed_url = farm.url("feed/o.xml")
    async with api_server(settings) as api:
        status, body = await api.call("POST", "/api/v1/feeds", {"url": farm.url("feed/p.xml")})
        assert status == 201
        feed_id = body["feeds"][0]["feed_id"]
        doc = document()
        # DELETE last, so the other operations on the feed find it.
        ops = sorted(_documented(), key=lambda pm: pm[1] == "delete")
        for path, method in ops:
            url = path.replace("{feed_id}", feed_id)
            body = _BODIES.get((path, method))
            if body:
                body = {k: [feed_url] if v == ["FEED_URL"] else (feed_url if v == "FEED_URL" else v)
                        for k, v in body.items()}
            params = dict(_QUERIES.get((path, method), {}))
            if path == "/":
                params["token"] = api.token
            if path == "/api/v1/items/stream":
                async with api.http.get(api.url(url), headers=api.headers()) as r:
                    status = r.status
                    assert r.content_type == "text/event-stream"
            else:
                status, _ = await api.call(method.upper(), url, body, params=params)
            assert str(status) in doc["paths"][path][method]["responses"], (path, method, status)
