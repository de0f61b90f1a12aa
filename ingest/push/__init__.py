"""WebSub (W3C, formerly PubSubHubbub) push subscriptions (#11, docs/push.md).

Pure decisions (`discover`, `signature`, `plan`, `verify`) are apart from the
shells that touch Redis (`state`) or the network (`hub`, `renew`, `receive`).
The HTTP callback routes live in ingest/web/routes_push.py.
"""

from __future__ import annotations

__all__: list[str] = []
