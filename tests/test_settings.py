from __future__ import annotations

import dataclasses
import subprocess
import tomllib
from pathlib import Path

import pytest

from ingest.cpus import quota_cores, usable_cores
from ingest.errors import SettingsError
from ingest.settings import Settings, load_settings
from tests.conftest import INGEST, REPO


def test_default_toml_lists_every_setting_with_the_code_default() -> None:
    with (REPO / "config" / "default.toml").open("rb") as fh:
        documented = tomllib.load(fh)
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert documented == defaults


def test_every_setting_in_default_toml_has_a_comment() -> None:
    lines = (REPO / "config" / "default.toml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#") and "=" in line:
            assert lines[i - 1].startswith("#") or lines[i - 2].startswith("#"), line


def test_environment_overrides_file_overrides_defaults(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('namespace = "fromfile"\nstream_maxlen = 10\n')
    s = load_settings(config, {"INGEST_NAMESPACE": "fromenv", "INGEST_LOG_LEVEL": "debug"})
    assert s.namespace == "fromenv"
    assert s.stream_maxlen == 10
    assert s.log_level == "DEBUG"
    assert s.sink_batch_size == Settings().sink_batch_size


def test_the_five_documented_variables_are_read() -> None:
    s = load_settings(None, {
        "INGEST_REDIS_URL": "redis://127.0.0.1:1/0",
        "INGEST_STORAGE_URL": "sqlite:////tmp/x.db",
        "INGEST_DATA_DIR": "/tmp/d",
        "INGEST_NAMESPACE": "ns",
        "INGEST_LOG_LEVEL": "WARNING",
    })
    assert (s.redis_url, s.storage_url, s.data_dir, s.namespace, s.log_level) == (
        "redis://127.0.0.1:1/0", "sqlite:////tmp/x.db", "/tmp/d", "ns", "WARNING")
    assert not s.embedded


def test_embedded_defaults_live_in_the_data_dir() -> None:
    s = load_settings(None, {"INGEST_DATA_DIR": "/tmp/d"})
    assert s.embedded
    assert s.effective_redis_url == "unix:///tmp/d/redis.sock"
    assert s.effective_storage_url == "sqlite:////tmp/d/items.db"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"INGEST_STREAM_MAXLEN": "lots"}, "stream_maxlen"),
        ({"INGEST_STREAM_MAXLEN": "0"}, "stream_maxlen"),
        ({"INGEST_REDIS_URL": "http://x"}, "redis_url"),
        ({"INGEST_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"INGEST_RUN_WORKERS": "maybe"}, "run_workers"),
        ({"INGEST_FETCH_TIMEOUT": "-1"}, "fetch_timeout"),
        ({"INGEST_NO_SUCH_THING": "1"}, "INGEST_NO_SUCH_THING"),
    ],
)
def test_invalid_settings_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        load_settings(None, env)


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("stream_max_len = 5\n")
    with pytest.raises(SettingsError, match="stream_max_len"):
        load_settings(config, {})


def test_wrong_type_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('sink_batch_size = "many"\n')
    with pytest.raises(SettingsError, match="sink_batch_size"):
        load_settings(config, {})


def test_cli_refuses_to_start_with_a_bad_setting(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "INGEST_SINK_BATCH_SIZE": "-3"}
    proc = subprocess.run([*INGEST, "stats"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "sink_batch_size" in proc.stderr


def test_configuration_page_lists_every_setting_with_its_variable_and_default() -> None:
    """docs/configuration.md stays true: one row per key of default.toml, with the
    variable that sets it and the default as default.toml writes it."""
    with (REPO / "config" / "default.toml").open("rb") as fh:
        settings = tomllib.load(fh)
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[1].startswith("`INGEST_"):
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2].strip("`"), cells[3])
    assert sorted(rows) == sorted(settings)
    for key, value in settings.items():
        variable, default, meaning = rows[key]
        assert variable == f"INGEST_{key.upper()}", key
        written = f'"{value}"' if isinstance(value, str) else str(value)
        written = written.lower() if isinstance(value, bool) else written
        assert default == written, key
        assert meaning, key


def test_test_variables_do_not_disturb_settings(tmp_path: Path) -> None:
    """The suite's own variables (TEST_*) are no settings: loading Settings with them
    set works, in-process and in a real `ingest` process."""
    env = {"TEST_FIXTURES_DIR": "/nowhere", "TEST_REQUIRE_FIXTURES": "1", "TEST_REQUIRE_POSTGRES": "1",
           "TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test", "INGEST_NAMESPACE": "n"}
    assert load_settings(None, env) == load_settings(None, {"INGEST_NAMESPACE": "n"})
    # `enqueue` loads Settings (a bad one exits 2), then refuses the URL before any Redis.
    proc = subprocess.run([*INGEST, "enqueue", "file:///etc/hostname"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env})
    assert proc.returncode == 1, proc.stderr
    assert "configuration error" not in proc.stderr and "only http and https" in proc.stderr


@pytest.mark.parametrize(("cpu_max", "cores"), [
    ("max 100000", None), ("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1),
    ("", None), ("garbage", None), ("0 100000", None),
])
def test_a_containers_cpu_quota_limits_auto_workers(cpu_max: str, cores: int | None) -> None:
    assert quota_cores(cpu_max) == cores


def test_auto_workers_are_never_more_than_the_cores_this_process_may_use() -> None:
    import os

    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))
