"""A real Redis Cluster on loopback for the tests: three masters, three replicas.

Six `redis-server` processes of the same binary (Redis 7 or later: sharded
Pub/Sub), each with `--cluster-enabled yes` in a private directory on free
ports, joined by `redis-cli --cluster create ... --cluster-replicas 1`.
`unavailable()` says why one cannot be started here (the tests skip with that
reason, or fail under TEST_REQUIRE_REDIS_CLUSTER=1).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

__all__ = ["LocalCluster", "cluster_binaries", "unavailable"]

NODE_TIMEOUT_MS = 1000  # a dead master is replaced by its replica within a few seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cluster_binaries() -> tuple[str, str] | None:
    """redis-server and redis-cli of version 7+ (TEST_REDIS_SERVER overrides the server)."""
    server = os.environ.get("TEST_REDIS_SERVER") or shutil.which("redis-server")
    cli = shutil.which("redis-cli", path=str(Path(server).parent) + os.pathsep + os.environ.get("PATH", "")) \
        if server else None
    if not server or not cli:
        return None
    return server, cli


def unavailable() -> str | None:
    """Why no cluster can be started here, or None."""
    found = cluster_binaries()
    if found is None:
        return "no redis-server and redis-cli on PATH (set TEST_REDIS_SERVER)"
    out = subprocess.run([found[0], "--version"], capture_output=True, text=True, check=False).stdout
    version = next((part[2:] for part in out.split() if part.startswith("v=")), "0")
    if int(version.split(".")[0] or 0) < 7:
        return f"{found[0]} is Redis {version}; cluster tests need 7+ (sharded Pub/Sub)"
    return None


class LocalCluster:
    """Six nodes in `base`; `start()` returns once every slot is served and replicated."""

    def __init__(self, base: Path) -> None:
        found = cluster_binaries()
        assert found is not None
        self.server, self.cli = found
        self.base = base
        self.ports = [_free_port() for _ in range(6)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def _start_node(self, port: int) -> None:
        directory = self.base / str(port)
        directory.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [self.server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-port", str(_free_port()),
             "--cluster-replica-validity-factor", "0",  # a replica may always take over
             "--appendonly", "yes", "--save", "", "--daemonize", "no",
             "--logfile", str(directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start(self, timeout: float = 60.0) -> None:
        for port in self.ports:
            self._start_node(port)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not self._answers(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {port} did not start: {self._log(port)}")
                time.sleep(0.05)
        subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout,
        )
        self.wait_healthy(deadline - time.monotonic())

    def _answers(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _log(self, port: int) -> str:
        try:
            return (self.base / str(port) / "redis.log").read_text(errors="replace")[-500:]
        except OSError:
            return ""

    def node_info(self, port: int) -> dict[str, str]:
        with redis.Redis(port=port, socket_timeout=2) as client:
            raw = client.execute_command("CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def alive(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def wait_healthy(self, timeout: float, replicated: bool = True) -> None:
        """Every live node says the cluster is ok and maps every slot to a live master (after
        a kill: once the replica took over); with `replicated`, every such master has a replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(self.node_info(p).get("cluster_state") == "ok" for p in self.alive()) and \
                        self._served_by_live_masters() and (not replicated or self._replicated()):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not become healthy in time")

    def _served_by_live_masters(self) -> bool:
        alive = set(self.alive())
        for port in alive:
            with redis.Redis(port=port, socket_timeout=2) as client:
                for _, _, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if int(master[1]) not in alive:
                        return False
        return True

    def _replicated(self) -> bool:
        for port in self.alive():
            with redis.Redis(port=port, socket_timeout=2) as client:
                info = client.info("replication")
            if info.get("role") == "master" and self._serves_slots(port) and info.get("connected_slaves", 0) < 1:
                return False
        return True

    def _serves_slots(self, port: int) -> bool:
        with redis.Redis(port=port, socket_timeout=2) as client:
            raw = client.execute_command("CLUSTER", "NODES")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        mine = next(line.split() for line in text.splitlines() if "myself" in line)
        return len(mine) > 8

    def master_of(self, key: str) -> int:
        """Port of the master serving `key`'s slot now."""
        with redis.Redis(port=self.alive()[0], socket_timeout=2) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise RuntimeError(f"no master for slot of {key}")

    def kill(self, port: int) -> None:
        """SIGKILL one node: a crash."""
        proc = self.processes[port]
        proc.kill()
        proc.wait()

    def flush(self) -> None:
        for port in self.alive():
            with redis.Redis(port=port, socket_timeout=5) as client:
                if client.info("replication").get("role") == "master":
                    client.flushall()

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
