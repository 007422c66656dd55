"""Shared fixtures: a real Redis (REDIS_URL, else an embedded redis-server) and the real-world test corpus.

`corpus` is the subset kept in tests/data/corpus (always there); `full_corpus` is the whole shared corpus named by
$MONITOR_CORPUS, and tests that use it are skipped when the variable is unset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from monitor.store import EmbeddedRedis, Keys, connect

# Inflected forms of the rules' cue words are cached on disk (monitor/rules/lemmas.py): one folder per test run,
# set before any test starts a `monitor` process so they share it, and never the user's own ~/.cache. Under
# pytest-xdist the controller makes the folder and its workers (started with its environment) use it too, so a word
# is looked up in simplemma's dictionaries once per run, not once per worker; the cache's writes are atomic (a
# temporary file renamed), and only the process that made the folder removes it.
_CACHE_PREFIX = "monitor-test-cache-"
_inherited = os.environ.get("XDG_CACHE_HOME", "")
if os.environ.get("PYTEST_XDIST_WORKER") and Path(_inherited).name.startswith(_CACHE_PREFIX):
    _CACHE, _OWN_CACHE = _inherited, False
else:
    _CACHE, _OWN_CACHE = tempfile.mkdtemp(prefix=_CACHE_PREFIX), True
    os.environ["XDG_CACHE_HOME"] = _CACHE


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE:
        shutil.rmtree(_CACHE, ignore_errors=True)


ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """REDIS_URL when set; otherwise one embedded redis-server for the whole session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture
def keys() -> Keys:
    """A key prefix of its own per test, so tests never see each other's state."""
    return Keys(prefix=f"test:{uuid.uuid4().hex[:12]}:")


@pytest.fixture
async def redis(redis_url: str, keys: Keys):
    client = connect(redis_url)
    yield client
    async for key in client.scan_iter(match=keys.prefix + "*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture(scope="session")
def shipped_rules():
    """The shipped pack (rules/) compiled once per session (per xdist worker), for tests that only match with it; a
    RuleSet is not changed by matching (its rules are a tuple, each article gets a context of its own)."""
    from monitor.rules import load_rules

    return load_rules(ROOT / "rules")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The corpus subset in the repository (feeds of every category, pages in every language; PROVENANCE.md)."""
    return CORPUS


@pytest.fixture(scope="session")
def full_corpus() -> Path:
    """The whole shared corpus, for sweeps: $MONITOR_CORPUS (.ci/run sets it when ../shared/corpus exists)."""
    named = os.environ.get("MONITOR_CORPUS")
    if not named:
        pytest.skip("MONITOR_CORPUS is not set: the whole-corpus sweep runs only when it names the shared corpus "
                    "folder (the subset in tests/data/corpus is tested either way)")
    path = Path(named).resolve()
    if not (path / "feeds" / "manifest.json").is_file() or not (path / "pages" / "manifest.json").is_file():
        pytest.fail(f"MONITOR_CORPUS={named}: not a corpus folder (no feeds/manifest.json and pages/manifest.json)")
    return path
