"""Settings: `config/default.toml` < a `--config` file < `INGEST_*` environment.

Settings are one frozen dataclass built once at start and passed down; no
module reads the environment or a global on its own. The dataclass holds the
defaults, and a test checks that `config/default.toml` lists exactly the same
keys and values, so the documented file can never drift from the code.

Every value is checked here, at start, so a typo fails with a message naming
the key instead of surfacing as an odd failure an hour later.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ingest.errors import SettingsError

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ENV_PREFIX = "INGEST_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The whole configuration; see config/default.toml for what each key means."""

    namespace: str = "ingest"
    redis_url: str = ""
    queue_redis_url: str = ""
    redis_cluster: bool = False
    embedded_redis_port: int = 0
    storage_url: str = ""
    data_dir: str = ""
    log_level: str = "INFO"
    log_format: str = "text"
    stream_maxlen: int = 100_000
    stream_record: str = "zstd"
    stream_max_entries: int = 1_000_000
    stream_max_bytes: int = 2_147_483_648
    durable_groups: str = ""
    durable_group_timeout: float = 21600.0
    stream_trim_seconds: float = 1.0
    item_retention_days: int = 90
    max_versions: int = 20
    cluster_threshold: float = 0.5
    cluster_threshold_cjk: float = 0.35
    cluster_retention_hours: int = 48
    cluster_index_hashes: int = 16384
    allowed_iframe_hosts: str = ""
    user_agent: str = "ingest/0.1 (news feed ingestion service)"
    connect_timeout: float = 10.0
    fetch_timeout: float = 30.0
    max_body_bytes: int = 20_000_000
    max_entity_expansion_bytes: int = 1_000_000
    max_entries_per_document: int = 1000
    max_text_chars: int = 2048
    max_content_chars: int = 200_000
    max_list_items: int = 50
    fast_parser: bool = True
    worker_max_jobs: int = 20
    worker_poll_delay: float = 0.05
    job_timeout: int = 120
    enqueue_wait_timeout: float = 120.0
    sink_batch_size: int = 500
    sink_block_ms: int = 1000
    sink_claim_idle_seconds: int = 60
    run_workers: bool = True
    workers: str = "auto"
    parse_deadline: float = 10.0
    worker_stall_grace: float = 5.0
    worker_heartbeat_ttl: float = 5.0
    sink_max_attempts: int = 5
    job_max_tries: int = 5
    job_retry_seconds: float = 5.0
    webhooks_file: str = ""
    webhook_max_attempts: int = 6
    webhook_retry_seconds: float = 1.0
    webhook_timeout: float = 10.0
    allow_networks: str = ""
    proxy: str = ""
    global_concurrency: int = 100
    per_host_concurrency: int = 2
    host_min_delay: float = 1.0
    host_cooldown_cap: float = 60.0
    default_interval: int = 900
    min_interval: int = 60
    max_interval: int = 21600
    max_backoff: int = 86400
    max_consecutive_errors: int = 10
    redirect_trust_count: int = 3
    lease_seconds: int = 120
    poll_batch: int = 200
    queue_bound: int = 2000
    shutdown_grace: float = 10.0
    listen: str = "127.0.0.1:8080"
    api_token: str = ""
    cors_origins: str = ""
    full_text: str = "auto"
    full_text_min_words: int = 80
    full_text_deadline: float = 10.0
    full_text_max_tries: int = 3
    full_text_robots_ttl: int = 86400
    full_text_ignore_robots_hosts: str = ""
    full_text_page_ttl: int = 86400
    public_url: str = ""
    push_poll_interval: int = 3600
    push_lease_seconds: int = 86400
    push_full_text_deadline: float = 0.0

    def __post_init__(self) -> None:
        _validate(self)

    # Derived values: computed, never configured twice.

    @property
    def data_path(self) -> Path:
        """The data directory, with the XDG default applied."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "ingest"

    @property
    def embedded(self) -> bool:
        """True when no Redis URL is configured and the embedded server is used."""
        return not self.redis_url

    @property
    def embedded_socket(self) -> Path:
        return self.data_path / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"unix://{self.embedded_socket}"

    @property
    def effective_queue_url(self) -> str:
        """The single Redis of arq's job queue: `queue_redis_url`, else the data Redis."""
        return self.queue_redis_url or self.effective_redis_url

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"sqlite:///{self.data_path / 'items.db'}"

    @functools.cached_property
    def allowed_networks(self) -> tuple[Network, ...]:
        """`allow_networks` parsed once (it is consulted on every request and redirect hop)."""
        from ingest.poll.urlguard import parse_networks

        return tuple(parse_networks(self.allow_networks))

    @property
    def worker_processes(self) -> int:
        """Worker processes `ingest run` starts: `workers` ("auto": one per usable core, a
        container's CPU limit included), 0 if run_workers is off."""
        if not self.run_workers:
            return 0
        if self.workers == "auto":
            from ingest.cpus import usable_cores

            return usable_cores()
        return int(self.workers)

    @property
    def stream_xadd_cap(self) -> int:
        """The cap delivery's XADD carries (MAXLEN ~): 10% over `stream_max_entries`, so that
        the trimmer, which counts what it cuts, normally cuts first (#20)."""
        return self.stream_max_entries + self.stream_max_entries // 10

    @property
    def item_retention_seconds(self) -> int:
        return self.item_retention_days * 86400

    @property
    def cluster_retention_seconds(self) -> int:
        return self.cluster_retention_hours * 3600


def _networks_problem(text: str) -> str | None:
    from ingest.poll.urlguard import parse_networks

    try:
        parse_networks(text)
    except ValueError as e:
        return str(e)
    return None


def _listen_problem(text: str) -> str | None:
    from ingest.web.access import parse_listen

    try:
        parse_listen(text)
    except ValueError as e:
        return str(e)
    return None


def _scheme_in(url: str, schemes: tuple[str, ...]) -> bool:
    return not url or urlsplit(url).scheme in schemes


# (key, reason it is wrong or None): one line per rule, in the order reported.
_CHECKS: tuple[tuple[str, Callable[[Settings], str | None]], ...] = (
    ("namespace", lambda s: None if s.namespace and not any(c in s.namespace for c in " \t\n{}")
     else "must be a non-empty word without spaces or braces"),
    ("redis_url", lambda s: None if _scheme_in(s.redis_url, ("redis", "rediss", "unix"))
     else "must start with redis://, rediss:// or unix://"),
    ("queue_redis_url", lambda s: None if _scheme_in(s.queue_redis_url, ("redis", "rediss", "unix"))
     else "must start with redis://, rediss:// or unix://"),
    ("redis_cluster", lambda s: None if not s.redis_cluster or (s.redis_url and s.queue_redis_url)
     else "needs redis_url (any node of the cluster) and queue_redis_url (a single Redis for "
          "arq's job queue: arq cannot use a Redis Cluster)"),
    ("storage_url", lambda s: None if _scheme_in(s.storage_url, ("sqlite", "postgresql", "postgres"))
     else "must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB"),
    ("log_level", lambda s: None if s.log_level.upper() in _LOG_LEVELS
     else f"must be one of {', '.join(_LOG_LEVELS)}"),
    ("log_format", lambda s: None if s.log_format in ("text", "json") else "must be 'text' or 'json'"),
    ("host_min_delay", lambda s: None if s.host_min_delay >= 0 else "must not be negative"),
    ("host_cooldown_cap", lambda s: None if s.host_cooldown_cap >= 0 else "must not be negative"),
    ("full_text_page_ttl", lambda s: None if s.full_text_page_ttl >= 0 else "must not be negative"),
    ("push_full_text_deadline", lambda s: None if s.push_full_text_deadline >= 0 else "must not be negative"),
    ("min_interval", lambda s: None if s.min_interval <= s.max_interval else "must not exceed max_interval"),
    ("allow_networks", lambda s: _networks_problem(s.allow_networks)),
    ("proxy", lambda s: None if _scheme_in(s.proxy, ("http", "https")) else "must be an http:// or https:// URL"),
    ("cluster_threshold", lambda s: None if 0 < s.cluster_threshold <= 1
     else "must be greater than 0 and at most 1"),
    ("workers", lambda s: None if s.workers == "auto" or (s.workers.isdigit() and int(s.workers) <= 256)
     else "must be 'auto' (one per core) or a number of processes from 0 to 256"),
    ("worker_heartbeat_ttl", lambda s: None if s.worker_heartbeat_ttl >= 1
     else "must be at least 1 second (the heartbeat is written every third of it)"),
    ("cluster_index_hashes", lambda s: None if 1 <= s.cluster_index_hashes <= 1 << 24
     else "must be from 1 to 16777216"),
    ("cluster_threshold_cjk", lambda s: None if 0 < s.cluster_threshold_cjk <= 1
     else "must be greater than 0 and at most 1"),
    ("listen", lambda s: _listen_problem(s.listen)),
    ("cors_origins", lambda s: None if all(o == "*" or o.startswith(("http://", "https://"))
                                           for o in s.cors_origins.split(",") if o.strip())
     else "must be '*' or a comma-separated list of http(s):// origins"),
    ("stream_record", lambda s: None if s.stream_record in ("json", "zstd")
     else "must be json or zstd"),
    ("full_text", lambda s: None if s.full_text in ("off", "auto", "always")
     else "must be off, auto or always"),
    ("public_url", lambda s: None if _scheme_in(s.public_url, ("http", "https")) and "?" not in s.public_url
     else "must be an http:// or https:// base URL without a query"),
    ("stream_max_entries", lambda s: None if s.stream_maxlen <= s.stream_max_entries * 0.75
     else "must be at least stream_maxlen / 0.75: the best-effort window may take three quarters "
          "of the cap, the rest is for durable groups that lag"),
    ("stream_max_bytes", lambda s: None if s.stream_max_bytes >= 0 else "must not be negative (0: no byte cap)"),
    ("durable_groups", lambda s: None if all(g.strip() and " " not in g.strip()
                                             for g in s.durable_groups.split(",")) or not s.durable_groups
     else "must be a comma-separated list of consumer group names"),
    ("embedded_redis_port", lambda s: None if 0 <= s.embedded_redis_port <= 65535
     else "must be a TCP port number or 0"),
)

_POSITIVE = (
    "stream_maxlen", "stream_max_entries", "durable_group_timeout", "stream_trim_seconds",
    "item_retention_days", "max_versions", "cluster_retention_hours",
    "connect_timeout", "fetch_timeout",
    "max_body_bytes", "max_entity_expansion_bytes", "max_entries_per_document", "max_text_chars",
    "max_content_chars", "max_list_items", "worker_max_jobs", "worker_poll_delay", "job_timeout",
    "enqueue_wait_timeout", "sink_batch_size", "sink_block_ms", "sink_claim_idle_seconds",
    "sink_max_attempts", "job_max_tries", "job_retry_seconds", "webhook_max_attempts",
    "webhook_retry_seconds", "webhook_timeout",
    "global_concurrency", "per_host_concurrency", "default_interval", "min_interval",
    "max_interval", "max_backoff", "max_consecutive_errors", "redirect_trust_count",
    "lease_seconds", "poll_batch", "queue_bound", "shutdown_grace",
    "full_text_min_words", "full_text_deadline", "full_text_max_tries", "full_text_robots_ttl",
    "parse_deadline", "worker_stall_grace",
    "push_poll_interval", "push_lease_seconds",
)


def _validate(s: Settings) -> None:
    """Reject values that are of the right type but make no sense, naming the key."""
    problems = [(key, check(s)) for key, check in _CHECKS]
    problems += [(key, None if getattr(s, key) > 0 else "must be greater than 0") for key in _POSITIVE]
    for key, why in problems:
        if why:
            raise SettingsError(
                f"setting {key!r} (INGEST_{key.upper()}): {why} (got {getattr(s, key)!r})"
            )


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(key: str, raw: Any, origin: str) -> Any:
    """Turn a TOML or environment value into the field's type, or fail naming the key."""
    kind: type = type(_FIELDS[key].default)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind is int:
            if isinstance(raw, bool) or isinstance(raw, float):
                raise ValueError("expected a whole number")
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError("expected a string")
        return raw
    except (TypeError, ValueError) as e:
        raise SettingsError(f"setting {key!r} from {origin}: {e} (got {raw!r})") from e


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise SettingsError(f"cannot read config file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"config file {path} is not valid TOML: {e}") from e
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting {unknown[0]!r}")
    return {k: _coerce(k, v, str(path)) for k, v in data.items()}


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from defaults, an optional TOML file and INGEST_* variables.

    `environ` defaults to os.environ; tests pass their own mapping. An INGEST_*
    variable that names no setting is an error too (a typo would otherwise be
    silently ignored), except INGEST_CONFIG, which names the file.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    if config_file:
        values.update(_read_file(Path(config_file)))
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in _IGNORED_ENV:
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in _FIELDS:
            raise SettingsError(f"environment variable {name} names no setting")
        values[key] = _coerce(key, raw, name)
    if "log_level" in values:
        values["log_level"] = str(values["log_level"]).upper()
    return Settings(**values)


# The one variable with the prefix that is not a setting: the config file's own
# path. The test suite's own variables start with TEST_ (docs/development.md).
_IGNORED_ENV = frozenset({ENV_PREFIX + "CONFIG"})
