"""Subscription requests to a hub (WebSub §5.1), through the same URL guard as feeds.

The hub is a host we contact, chosen by whoever writes the feed: its URL is
judged by `check_url` before any I/O and every connection goes through the
guarded resolver of `new_session`, exactly as a feed fetch. Redirects are
not followed (a hub answers the request itself). The hub's answer is a
value: None when it accepted (2xx, normally 202), else why not.
"""

from __future__ import annotations

import asyncio

import aiohttp

from ingest.errors import URLRefused
from ingest.excerpt import excerpt
from ingest.poll.urlguard import check_url
from ingest.settings import Settings

__all__ = ["hub_request"]


async def hub_request(
    session: aiohttp.ClientSession, settings: Settings, hub: str, *, mode: str, topic: str,
    callback: str, secret: str = "", lease_seconds: int = 0,
) -> str | None:
    """POST one subscribe/unsubscribe request; None if the hub accepted it, else the reason."""
    form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": callback}
    if mode == "subscribe":
        form["hub.secret"] = secret
        if lease_seconds:
            form["hub.lease_seconds"] = str(lease_seconds)
    try:
        check_url(hub, settings.allowed_networks)
        async with session.post(hub, data=form, allow_redirects=False) as response:
            if 200 <= response.status < 300:
                return None
            text = await response.content.read(300)
            return excerpt(f"hub answered HTTP {response.status}: {text.decode('utf-8', 'replace')}")
    except URLRefused as e:
        return f"refused: {e}"
    except TimeoutError:
        return f"{hub}: timed out"
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as e:
        return excerpt(f"{hub}: {type(e).__name__}: {e}")
