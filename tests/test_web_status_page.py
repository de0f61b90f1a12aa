"""The status page in a real headless Chromium: loads without console errors, shows a feed
added during the test, fits a phone's width; a screenshot is written (docs/status-page.png
when TEST_SCREENSHOT_DIR names the docs folder)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.models import FeedSpec
from ingest.poll.registry import record_failure
from ingest.settings import Settings
from tests.chromium import browser_page, chromium_or_skip
from tests.farm import Farm, sample_feed
from tests.helpers import feed_id_of
from tests.webserver import TOKEN, api_server


@pytest.mark.usefixtures("worker")
async def test_status_page_in_chromium(settings: Settings, farm: Farm, tmp_path: Path) -> None:
    binary = chromium_or_skip()
    farm.feeds["harbour.xml"] = sample_feed("harbour", items=12)
    async with api_server(settings) as api:
        good = farm.url("feed/harbour.xml")
        status, body = await api.call("POST", "/api/v1/feeds", {"url": good, "tags": ["wire"]})
        assert status == 201, body
        for _ in range(200):  # the worker parses the first body the add fetched (bounded: 20 s)
            status, body = await api.call("GET", "/api/v1/stats")
            if body["counters"].get("items_new") == 12:
                break
            await asyncio.sleep(0.1)
        assert body["counters"]["items_new"] == 12
        broken = farm.url("status/500")
        status, _ = await api.call("POST", "/api/v1/feeds", {"url": broken, "force": True})
        assert status == 201
        client = aioredis.Redis.from_url(settings.redis_url)
        await record_failure(client, Keys(settings.namespace), FeedSpec(feed_id_of(broken), broken),
                             "fetch_errors", f"{broken}: HTTP 500 Internal Server Error", "2026-01-01T00:00:00Z")
        await client.aclose()

        async with browser_page(binary, tmp_path / "profile") as page:
            await page.open(f"{api.base}/?token={TOKEN}", width=390, height=844, mobile=True)
            text = await page.evaluate("document.body.innerText")
            assert good in text and "HTTP 500 Internal Server Error" in text
            assert "Items per minute, last hour (12 items)".lower() in text.lower()
            assert await page.evaluate("document.querySelectorAll('svg rect.bar').length") == 60
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            assert await page.evaluate("document.querySelector('meta[http-equiv=refresh]').content") == "30"
            await page.screenshot(tmp_path / "phone.png")
            await page.open(f"{api.base}/?token={TOKEN}", width=1100, height=800, mobile=False)
            await page.screenshot(tmp_path / "status-page.png")
            assert page.console_errors() == []
            # The check itself sees errors: the page without its token is a 401.
            await page.open(f"{api.base}/", width=1100, height=800, mobile=False)
            assert page.console_errors() != []
    assert (tmp_path / "status-page.png").stat().st_size > 10_000
    target = os.environ.get("TEST_SCREENSHOT_DIR")
    if target:
        shutil.copy(tmp_path / "status-page.png", Path(target) / "status-page.png")
        shutil.copy(tmp_path / "phone.png", Path(target) / "status-page-phone.png")
