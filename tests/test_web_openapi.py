"""The OpenAPI document matches the server: every route documented, every documented path served."""

from __future__ import annotations

from ingest.settings import Settings
from ingest.web.app import build_app
from ingest.web.openapi import document
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
