"""Hot reload against a real watched folder: broken files keep the last good rules; fixed files go live."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.models import Article
from monitor.rules import RuleSet, RuleWatcher

ENTITIES = "state:\n  entries:\n    - Ukraine: [Kyiv, Kiev]\n"
RULE = "rules:\n  - id: tanks\n    query: tank AND @state\n"
NEW_RULE = "rules:\n  - id: tanks\n    query: jet AND @state\n"

TANK = Article(url="u1", text="A tank for Kyiv.")
JET = Article(url="u2", text="A jet for Kyiv.")


def fired(rs: RuleSet, article: Article) -> bool:
    return bool(rs.match(article))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "entities").mkdir()
    (tmp_path / "entities" / "states.yaml").write_text(ENTITIES)
    (tmp_path / "tanks.yaml").write_text(RULE)
    return tmp_path


async def until(condition, timeout: float = 15.0) -> None:
    """Wait for the watcher to act (file events are asynchronous); fail if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the watcher did not react")
        await asyncio.sleep(0.02)


@pytest.fixture
async def watching(folder: Path):
    changes: list[RuleSet] = []
    watcher = RuleWatcher(folder, on_change=changes.append, debounce_ms=50)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.watch(stop))
    await asyncio.sleep(0.3)  # let the watcher start before files change
    yield watcher, changes
    stop.set()
    await asyncio.wait_for(task, 10)


BREAKAGES = {
    "syntax error": ("tanks.yaml", "rules:\n  - id: tanks\n    query: [jet AND\n", "tanks.yaml:4:1"),
    "duplicate key": ("tanks.yaml", NEW_RULE + "    query: jet\n", "tanks.yaml:4:5: duplicate key 'query'"),
    "half-written file": ("tanks.yaml", "rules:\n  - id: tanks\n    query: \"jet AND @sta", "tanks.yaml:3:"),
    "bad query": ("tanks.yaml", "rules:\n  - id: tanks\n    query: jet AND @weapon\n", "tanks.yaml:3:20"),
    "invalid utf-8": ("tanks.yaml", b"rules: \xff\n", "tanks.yaml:1:1: cannot read"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
async def test_broken_file_keeps_old_rules_then_fix_goes_live(watching, folder, breakage):
    watcher, changes = watching
    name, content, where = BREAKAGES[breakage]
    old_version = watcher.current.version
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    await until(lambda: watcher.reloads_failed >= 1)
    assert watcher.current.version == old_version
    assert fired(watcher.current, TANK) and not fired(watcher.current, JET)
    assert where in watcher.last_error
    assert changes == []

    path.write_text(NEW_RULE)
    await until(lambda: len(changes) == 1)
    assert watcher.last_error is None
    assert watcher.current is changes[0]
    assert fired(watcher.current, JET) and not fired(watcher.current, TANK)


async def test_deleted_entity_file_keeps_old_rules(watching, folder):
    watcher, changes = watching
    (folder / "entities" / "states.yaml").unlink()
    await until(lambda: watcher.reloads_failed >= 1)
    assert "unknown entity kind 'state'" in watcher.last_error and "tanks.yaml:3:" in watcher.last_error
    assert fired(watcher.current, TANK)
    (folder / "entities" / "states.yaml").write_text(ENTITIES)
    await until(lambda: watcher.reloads_ok >= 1)
    assert watcher.last_error is None and changes == []  # same files again: same version, nothing to swap


def test_deleted_folder_keeps_old_rules_on_sighup_reload(folder):
    watcher = RuleWatcher(folder)
    shutil.rmtree(folder)
    assert watcher.reload() is False
    assert watcher.reloads_failed == 1 and "not found" in watcher.last_error
    assert fired(watcher.current, TANK)


def test_deleted_rule_file_of_several_removes_only_its_rules(folder):
    (folder / "jets.yaml").write_text(NEW_RULE.replace("id: tanks", "id: jets"))
    watcher = RuleWatcher(folder)
    (folder / "tanks.yaml").unlink()
    assert watcher.reload() is True
    assert [r.id for r in watcher.current.rules] == ["jets"]


def test_invalid_rules_at_start_raise(folder):
    (folder / "tanks.yaml").write_text("rules: [")
    with pytest.raises(RuleError):
        RuleWatcher(folder)


async def test_deleted_folder_keeps_old_rules_and_watching_resumes_when_it_is_back(watching, folder):
    watcher, changes = watching
    shutil.rmtree(folder)
    await until(lambda: watcher.reloads_failed >= 1)
    assert "not found" in watcher.last_error and fired(watcher.current, TANK)
    (folder / "entities").mkdir(parents=True)
    (folder / "entities" / "states.yaml").write_text(ENTITIES)
    (folder / "tanks.yaml").write_text(NEW_RULE)
    await until(lambda: len(changes) == 1)
    assert fired(watcher.current, JET) and not fired(watcher.current, TANK)
    (folder / "tanks.yaml").write_text(RULE)  # and the new folder is watched
    await until(lambda: len(changes) == 2)
    assert fired(watcher.current, TANK)
