"""Add feed sources to monitor.yaml as text, keeping every comment and the file's layout (`feeds add/import --write`).

The new items go after the last item of `sources.feeds` (block or flow list), or into a new `feeds:` key after the
last setting of `sources:`, or a new `sources:` section at the end. The edited file is validated as `monitor check`
would validate it before it replaces the old one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def feed_item(url: str, *, name: str = "", tags: tuple[str, ...] | list[str] = ()) -> str:
    """One source as a one-line YAML flow mapping: `{url: ..., name: ..., tags: [...]}`."""
    data: dict[str, Any] = {"url": url}
    if name:
        data["name"] = name
    if tags:
        data["tags"] = list(tags)
    return yaml.safe_dump(data, default_flow_style=True, width=1 << 20, allow_unicode=True, sort_keys=False).strip()


def insert_feed_items(raw: str, items: list[str], *, label: str) -> str:
    """`raw` with `items` (flow mappings from feed_item) added to sources.feeds, all else unchanged."""
    try:
        root = yaml.compose(raw, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML, not changed: {exc}") from None
    if root is None or _is_null(root):
        return _append(raw, "sources:\n  feeds:\n" + "".join(f"    - {i}\n" for i in items))
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{label}: the configuration is not a mapping of settings, not changed")
    key, sources = _entry(root, "sources")
    if sources is None:
        return _append(raw, "sources:\n  feeds:\n" + "".join(f"    - {i}\n" for i in items))
    if _is_null(sources):
        return _after_line(raw, key.end_mark.index, "  feeds:\n" + "".join(f"    - {i}\n" for i in items))
    if not isinstance(sources, yaml.MappingNode):
        raise ConfigError(f"{label}:{sources.start_mark.line + 1}: sources is not a mapping, not changed")
    if sources.flow_style:
        return _into_flow(raw, sources, f"feeds: [{', '.join(items)}]")
    feeds_key, feeds = _entry(sources, "feeds")
    if feeds is None:
        indent = " " * sources.value[0][0].start_mark.column  # a new last key of sources, at its keys' indent
        return _after_line(raw, _content_end(sources), f"{indent}feeds:\n" + "".join(f"{indent}  - {i}\n"
                                                                                    for i in items))
    if _is_null(feeds):
        indent = " " * (feeds_key.start_mark.column + 2)
        return _after_line(raw, feeds_key.end_mark.index, "".join(f"{indent}- {i}\n" for i in items))
    if not isinstance(feeds, yaml.SequenceNode):
        raise ConfigError(f"{label}:{feeds.start_mark.line + 1}: sources.feeds is not a list, not changed")
    if feeds.flow_style:
        return _into_flow(raw, feeds, ", ".join(items))
    return _after_last_item(raw, feeds, items)


def _entry(mapping: yaml.MappingNode, name: str) -> tuple[Any, Any]:
    for key, value in mapping.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            return key, value
    return None, None


def _is_null(node: Any) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _append(raw: str, text: str) -> str:
    if raw and not raw.endswith("\n"):
        raw += "\n"
    return raw + ("\n" if raw.strip() else "") + text


def _line_end(raw: str, index: int) -> int:
    """The index just past the newline of the line holding `index` (the end of the text if there is none)."""
    newline = raw.find("\n", index)
    return len(raw) if newline < 0 else newline + 1


def _into_flow(raw: str, node: Any, text: str) -> str:
    """Before the closing bracket of a flow collection: `[a]` -> `[a, text]`, `{}` -> `{text}`."""
    close = node.end_mark.index - 1
    separator = ", " if node.value else ""
    return raw[:close] + separator + text + raw[close:]


def _content_end(node: Any) -> int:
    """Where the node's own text ends (a block collection's end mark lies at the next token, past comments)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return node.end_mark.index
    if isinstance(node, yaml.MappingNode):
        return max((_content_end(v) for pair in node.value for v in pair), default=node.start_mark.index)
    return max((_content_end(v) for v in node.value), default=node.start_mark.index)


def _after_last_item(raw: str, feeds: yaml.SequenceNode, items: list[str]) -> str:
    last = feeds.value[-1]
    line_start = raw.rfind("\n", 0, last.start_mark.index) + 1
    prefix = raw[line_start:last.start_mark.index]
    dash = prefix.rfind("-")
    indent = prefix[:dash] if dash >= 0 and not prefix[:dash].strip() else " " * max(last.start_mark.column - 2, 0)
    return _after_line(raw, _content_end(last), "".join(f"{indent}- {i}\n" for i in items))


def _after_line(raw: str, index: int, text: str) -> str:
    """`text` inserted after the line on which the text ending at `index` (exclusive) ends."""
    at = _line_end(raw, max(index - 1, 0))
    prefix = raw[:at] if raw[:at].endswith("\n") else raw[:at] + "\n"
    return prefix + text + raw[at:]


def write_feed_items(path: Path, items: list[str]) -> None:
    """Add `items` to the configuration file at `path`, only if the result is a valid configuration."""
    from .config import load_config

    label = str(path)
    path = path.resolve()  # a symlinked monitor.yaml: its target is edited, the link stays
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read the configuration: {exc}") from None
    edited = insert_feed_items(raw, items, label=label)
    draft = path.with_name(f".{path.name}.{os.getpid()}.draft")
    try:
        draft.write_text(edited, encoding="utf-8")
        shutil.copymode(path, draft)
        try:
            load_config(draft, environ={})
        except ConfigError as exc:
            problems = [p.replace(str(draft), label) for p in exc.problems]
            raise ConfigError(f"{label}: the edited configuration would not be valid; not changed", problems) from None
        os.replace(draft, path)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot write the configuration: {exc.strerror or exc}") from None
    finally:
        draft.unlink(missing_ok=True)
