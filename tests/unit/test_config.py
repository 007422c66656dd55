"""monitor.yaml validation: every error with file, line and key path, all at once; environment overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.settings import parse_duration

MONITOR_BIN = Path(sys.executable).with_name("monitor")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    return path


def test_typo_in_a_key_names_file_line_and_key_path(tmp_path):
    path = write(tmp_path, "redis:\n  prefix: 'x:'\n  ulr: redis://127.0.0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [f"{path}:3:3: redis.ulr: unknown setting (check the spelling)"]


def test_all_errors_are_reported_at_once(tmp_path):
    path = write(tmp_path, "sources:\n  interval: soon\n  feeds:\n    - url: ftp://example.org/x\nworkers:\n"
                           "  processes: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:2:3: sources.interval: ")
    assert problems[1].startswith(f"{path}:4:7: sources.feeds.0.url: ")
    assert problems[2].startswith(f"{path}:6:3: workers.processes: ")


def test_duplicate_keys_are_an_error(tmp_path):
    path = write(tmp_path, "data_dir: a\ndata_dir: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [f"{path}:2:1: duplicate key 'data_dir'"]


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, "redis:\n  url: redis://10.0.0.1:6379\n")
    config = load_config(path, environ={"MONITOR_REDIS__URL": "redis://127.0.0.1:6380/2",
                                        "MONITOR_SOURCES__INTERVAL": "2h"})
    assert config.redis.url == "redis://127.0.0.1:6380/2"
    assert config.sources.interval == 7200


def test_a_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"MONITOR_WORKERS__PROCESSES": "many"})
    assert info.value.problems[0].startswith("environment MONITOR_WORKERS__PROCESSES: workers.processes: ")


def test_relative_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "monitor.yaml"
    path.write_text("data_dir: state\nsources:\n  directories: [{path: ../seeds}]\nrules: {path: rules}\n")
    config = load_config(path, environ={})
    assert config.data_dir == str(tmp_path / "etc" / "state")
    assert config.rules.path == str(tmp_path / "etc" / "rules")
    assert config.feeds()[0].url == (tmp_path / "seeds").as_uri()


def test_source_ids_are_stable_and_intervals_default(tmp_path):
    text = "sources:\n  interval: 10m\n  feeds:\n    - {url: 'https://a.example/rss'}\n" \
           "    - {url: 'https://b.example/rss', interval: 30s, id: b}\n"
    first = load_config(write(tmp_path, text), environ={}).feeds()
    again = load_config(write(tmp_path, text), environ={}).feeds()
    assert [f.id for f in first] == [f.id for f in again]
    assert first[1].id == "b"
    assert [f.interval for f in first] == [600, 30]


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800),
                                          (45, 45), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_monitor_check_exits_nonzero_and_names_the_typo(tmp_path):
    path = write(tmp_path, "sources:\n  intervall: 5m\n")
    result = subprocess.run([str(MONITOR_BIN), "check", "--config", str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert f"{path}:2:3: sources.intervall: unknown setting" in result.stderr


def test_monitor_check_accepts_the_shipped_configurations(tmp_path):
    root = Path(__file__).resolve().parents[2]
    # check resolves secrets as run does: deploy/monitor.yaml's {credential:slack} is the unit's credential folder
    # file, named monitor_slack by systemd (LoadCredential=monitor:/etc/monitor/credentials)
    (tmp_path / "monitor_slack").write_text("xoxb-test-token\n")
    for name in ("monitor.yaml", "deploy/monitor.yaml"):
        env = dict(os.environ, MONITOR_RULES__PATH=str(root / "rules"),  # deploy/ names /etc/monitor/rules
                   CREDENTIALS_DIRECTORY=str(tmp_path))
        result = subprocess.run([str(MONITOR_BIN), "check", "--config", str(root / name)], capture_output=True,
                                text=True, timeout=120, cwd=root, env=env)
        assert result.returncode == 0, (name, result.stdout, result.stderr)


def test_monitor_corpus_and_config_variables_are_not_setting_overrides():
    config = load_config(None, environ={"MONITOR_CORPUS": "../shared/corpus", "MONITOR_CONFIG": "x.yaml"})
    assert config.data_dir.endswith("data")


def test_fetch_max_retry_after_is_a_duration_named_by_file_and_line(tmp_path):
    assert load_config(write(tmp_path, "fetch:\n  max_retry_after: 2m\n"), environ={}).fetch.max_retry_after == 120
    path = write(tmp_path, "fetch:\n  max_retry_after: soon\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:2:") and "fetch.max_retry_after" in problem and "not a duration" in problem
