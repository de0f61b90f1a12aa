"""Run inside `unshare -n` (a network namespace with only loopback): redirect hops
to refused addresses must be refused. Even if the guard were broken, packets to
10.0.0.1 and friends could go nowhere from here. Prints one JSON line of results."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ingest.models import FetchFailed  # noqa: E402
from ingest.poll.fetch import conditional_get, new_session  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from tests.farm import Farm  # noqa: E402

TARGETS = [
    "http://10.0.0.1/feed",
    "http://167772161/feed",  # 10.0.0.1 in decimal
    "http://012.0.0.1/feed",  # 10.0.0.1 in octal
    "http://[::ffff:10.0.0.1]/feed",  # IPv4-mapped IPv6
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://192.168.1.1/",
    "http://[fe80::1]/",
    "ftp://127.0.0.1/feed",
]


async def main() -> None:
    farm = Farm()
    farm.start()
    settings = Settings(allow_networks="127.0.0.0/8")
    session = new_session(settings)
    results = {}
    try:
        for target in TARGETS:
            result = await conditional_get(session, farm.url("to?url=" + target), settings)
            results[target] = {"refused": isinstance(result, FetchFailed) and result.refused,
                               "error": getattr(result, "error", "")}
    finally:
        await session.close()
        farm.stop()
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    asyncio.run(main())
