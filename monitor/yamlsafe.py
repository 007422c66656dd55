"""Safe YAML loading that remembers where every key and value stood, rejects duplicate keys, tags and alias bombs.

Errors found later (pydantic validation, query parsing) are mapped back to `file:line:column` through `Doc.where`.
Used for monitor.yaml and for the rule and entity files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_NODES = 200_000
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
Path_ = tuple[Any, ...]


@dataclass
class Doc:
    """One parsed YAML file: data, and for every path the node's position (line, column, start and end index)."""

    path: Path
    label: str
    raw: str
    data: Any = None
    marks: dict[Path_, tuple[int, int, int, int]] = field(default_factory=dict)
    nodes: int = 0

    def where(self, path: Path_ = ()) -> str:
        path = tuple(path)
        while path and path not in self.marks:
            path = path[:-1]
        line, col, _a, _b = self.marks.get(path, (0, 0, 0, 0))
        return f"{self.label}:{line + 1}:{col + 1}"

    def where_in_value(self, path: Path_, token: str, pos: int, query: str) -> str:
        """file:line:column of `token` (at offset `pos` of the scalar `query`) inside the file's text."""
        line, col, a, b = self.marks.get(tuple(path), (0, 0, 0, 0))
        segment = self.raw[a:b]
        index = -1
        if token:
            nth = query[: max(pos, 0)].count(token)
            index = -1
            for _ in range(nth + 1):
                index = segment.find(token, index + 1)
                if index < 0:
                    break
        if index < 0:
            return f"{self.label}:{line + 1}:{col + 1}"
        absolute = a + index
        line = self.raw.count("\n", 0, absolute)
        col = absolute - (self.raw.rfind("\n", 0, absolute) + 1)
        return f"{self.label}:{line + 1}:{col + 1}"


def parse_yaml(path: Path, label: str, problems: list[str]) -> Doc | None:
    """Read and parse one file; on any problem append it and return None."""
    try:
        raw = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{label}:1:1: cannot read the file: {exc}")
        return None
    return parse_yaml_text(raw, path=path, label=label, problems=problems)


def parse_yaml_text(raw: str, *, path: Path, label: str, problems: list[str]) -> Doc | None:
    """Parse YAML text with the safe constructors only; on any problem append it and return None."""
    doc = Doc(path, label, raw)
    loader = yaml.SafeLoader(raw)
    before = len(problems)
    try:
        node = loader.get_single_node()
        doc.data = _walk(loader, node, (), doc, problems) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else f"{label}:1:1"
        problems.append(f"{where}: YAML syntax error: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        problems.append(f"{label}:1:1: YAML error: {exc}")
    except (_TooBig, RecursionError):
        problems.append(f"{label}:1:1: the file expands to more than {MAX_NODES} YAML nodes (aliases?)")
    finally:
        loader.dispose()
    return doc if len(problems) == before else None


class _TooBig(Exception):
    pass


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, doc: Doc, problems: list[str]) -> Any:
    doc.nodes += 1
    if doc.nodes > MAX_NODES:  # aliases can expand a small file exponentially ("billion laughs")
        raise _TooBig
    doc.marks[path] = (node.start_mark.line, node.start_mark.column, node.start_mark.index, node.end_mark.index)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        # collections are walked here, not constructed by PyYAML: refuse tags that would mean more than data
        problems.append(f"{doc.label}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: "
                        f"unsupported YAML tag {node.tag!r}")
        return None
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                problems.append(f"{doc.label}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}: "
                                "a key must be plain text")
                continue
            if key in out:
                problems.append(f"{doc.label}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}: "
                                f"duplicate key {key!r}")
                continue
            out[key] = _walk(loader, value_node, path + (key,), doc, problems)
            doc.marks[path + (key,)] = (key_node.start_mark.line, key_node.start_mark.column,
                                        value_node.start_mark.index, value_node.end_mark.index)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, child, path + (i,), doc, problems) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
