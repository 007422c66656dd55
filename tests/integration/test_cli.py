"""The analyst commands as a user runs them: rules test, rules explain, rules replay, feeds, alerts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MONITOR_BIN = Path(sys.executable).with_name("monitor")
SEEDS = ROOT / "seeds"


def monitor(*args: str, cwd: Path | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(MONITOR_BIN), *args], capture_output=True, input=stdin, timeout=180,
                          cwd=cwd or ROOT, env=env)


def test_rules_test_passes_on_the_shipped_rules():
    result = monitor("rules", "test", "rules/")
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"0 failed" in result.stdout


def test_rules_test_fails_with_a_diff_when_an_example_breaks(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("*.yaml"))
    (rules / "tanks.yaml").write_text("""rules:
  - id: tanks
    title: Tanks
    query: tank AND Ukraine
    examples:
      match: ["Ukraine gets more artillery."]
""")
    result = monitor("rules", "test", str(rules))
    assert result.returncode == 1
    out = result.stdout.decode()
    assert "FAIL tanks: 0/1 examples" in out
    assert "expected MATCH, got no match" in out and "Ukraine gets more artillery." in out


def test_explain_reads_standard_input_and_says_who_gives_what():
    result = monitor("rules", "explain", "-", "--no-color", stdin=(SEEDS / "000_1bb014922f46a2c7.txt").read_bytes())
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "arms-pledge FIRES" in out
    assert "donors: Denmark, Netherlands" in out and "systems: Leopard 2" in out
    assert "\x1b[" not in out


def test_explain_says_why_seed_004_does_not_fire_the_pledge_rule():
    result = monitor("rules", "explain", str(SEEDS / "004_a6bc03643da2e262.txt"), "--no-color")
    out = result.stdout.decode()
    assert "arms-pledge no match" in out
    assert "arms-transfer-watch FIRES" in out


def test_replay_lists_what_would_newly_fire_and_what_no_longer_would(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"""
data_dir: {tmp_path / 'data'}
sources: {{directories: [{{path: {SEEDS}}}]}}
rules: {{path: {rules}}}
channels: {{analysts: {{urls: ["jsonl://{tmp_path / 'alerts.jsonl'}"]}}}}
""")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    first = monitor("run", "--once", "-c", str(config), env=env)
    assert first.returncode == 0, first.stderr.decode()[-2000:]

    draft = tmp_path / "draft"  # a draft folder is replayed without touching the live one
    shutil.copytree(ROOT / "rules" / "entities", draft / "entities")
    (draft / "zelensky.yaml").write_text("""rules:
  - id: zelensky-switzerland
    title: Zelensky and Switzerland
    all: [Zelensky, Switzerland]
""")
    tried = monitor("rules", "replay", "--since", "1h", "--rules", str(draft), "-c", str(config), env=env)
    assert tried.returncode == 0, tried.stderr.decode()
    assert sum(line.startswith("NEW") and "zelensky-switzerland" in line
               for line in tried.stdout.decode().splitlines()) == 1
    assert sorted(p.name for p in rules.glob("*.yaml")) == ["arms-pledges.yaml", "keywords-example.yaml"]
    unknown = monitor("rules", "replay", "--rule", "nope", "-c", str(config), env=env)
    assert unknown.returncode == 1 and b"rule 'nope' is not in" in unknown.stderr and b"arms-pledge" in unknown.stderr

    (rules / "arms-pledges.yaml").unlink()  # the pledge and watch rules go away; a new keyword rule arrives
    (rules / "zelensky.yaml").write_text("""rules:
  - id: zelensky-switzerland
    title: Zelensky and Switzerland
    all: [Zelensky, Switzerland]
""")
    result = monitor("rules", "replay", "--since", "1h", "-c", str(config), env=env)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert out.startswith("replayed 2 articles")
    lines = out.splitlines()[1:]
    assert sum(line.startswith("NEW") and "zelensky-switzerland" in line for line in lines) == 1
    assert sum(line.startswith("NO LONGER") and "arms-pledge " in line for line in lines) == 1
    assert sum(line.startswith("NO LONGER") and "arms-transfer-watch" in line for line in lines) == 2

    only = monitor("rules", "replay", "--since", "1h", "--rule", "zelensky-switzerland", "-c", str(config), env=env)
    assert [line.split()[0] for line in only.stdout.decode().splitlines()[1:]] == ["NEW"]

    feeds = monitor("feeds", "-c", str(config), env=env)
    assert feeds.returncode == 0 and "seeds" in feeds.stdout.decode()
    history = monitor("alerts", "list", "-c", str(config), env=env)
    assert history.returncode == 0 and "arms-pledge" in history.stdout.decode()
    alert_id = next(line.split()[0] for line in history.stdout.decode().splitlines() if "arms-pledge " in line)
    shown = monitor("alerts", "show", alert_id, "-c", str(config), env=env).stdout.decode()
    assert "facts:    donors: Denmark, Netherlands" in shown and "['" not in shown  # values, not Python reprs
    missing = monitor("alerts", "show", "a0000", "-c", str(config), env=env)
    assert missing.returncode == 1 and missing.stderr.decode().startswith("error: no alert a0000")
    sent = monitor("alerts", "retry", alert_id, "-c", str(config), env=env)
    assert sent.returncode == 1 and b"no channel gave up on it, nothing to retry" in sent.stderr
    assert monitor("alerts", "retry", "a0000", "-c", str(config), env=env).returncode == 1


def test_read_only_commands_without_a_configuration_create_no_data_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MONITOR_CONFIG")}
    for args in (["feeds"], ["alerts", "list"]):
        result = monitor(*args, cwd=tmp_path, env=env)
        assert result.returncode == 1
        assert result.stderr.decode().startswith(f"error: no monitor data at {tmp_path / 'data'}")
        assert not (tmp_path / "data").exists()
