"""Safe YAML loading that remembers where every key and value stood, rejects duplicate keys, tags and alias bombs.

Errors found later (pydantic validation, query parsing) are mapped back to `file:line:column` through `Doc.where`.
Used for monitor.yaml and for the rule and entity files.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

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
        problems.append(_syntax_problem(label, exc))
    except yaml.YAMLError as exc:
        problems.append(f"{label}:1:1: YAML error: {exc}")
    except (_TooBig, RecursionError):
        problems.append(f"{label}:1:1: the file expands to more than {MAX_NODES} YAML nodes (aliases?)")
    finally:
        loader.dispose()
    return doc if len(problems) == before else None


_STARTED = {
    "while scanning a quoted scalar": "the quoted text that starts here is never closed",
    "while scanning a simple key": "expected 'key: value' on this line",
}


def _syntax_problem(label: str, exc: yaml.MarkedYAMLError) -> str:
    """`file:line:col: YAML syntax error: ...` at the line of the mistake.

    The scanner notices an unclosed quote or a key without its colon only where it gives up (often the end of the
    file); its context mark is where the quote or key began, which is what needs fixing. The parser's own marks
    (bad indentation) are already at the offending line."""
    mark, context = exc.problem_mark, exc.context_mark
    message = exc.problem or exc.context or "invalid YAML"
    if isinstance(exc, yaml.scanner.ScannerError) and context is not None and (
            mark is None or context.line < mark.line):
        gave_up = f" at line {mark.line + 1}" if mark is not None else ""
        started = _STARTED.get(exc.context or "", f"{exc.context}, starting here")
        message = f"{started} ({message}{gave_up})"
        mark = context
    where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else f"{label}:1:1"
    return f"{where}: YAML syntax error: {message}"


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


def did_you_mean(word: str, choices: Any) -> str:
    """", did you mean 'severity'?" for a near miss among `choices`, else ""."""
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f", did you mean {close[0]}?" if close else ""


def unknown_key_hint(model: type[BaseModel], loc: Path_) -> str:
    """For an unknown key at `loc` (a pydantic error location) under `model`: the nearest allowed key, if any."""
    current: Any = model
    for part in loc[:-1]:
        current = _inner(current, part)
        if current is None:
            return ""
    if typing.get_origin(current) in (typing.Union, types.UnionType):
        current = next((a for a in typing.get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return ""
    allowed = set(current.model_fields) | {f.alias for f in current.model_fields.values() if f.alias}
    return did_you_mean(loc[-1], allowed - {"source_path"})


def _inner(annotation: Any, part: Any) -> Any:
    """The type found one step down `annotation` at `part` (a field name, a list index or a dict key)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        named = [m for m in models if m.__name__ == part]
        if named:
            return named[0]  # pydantic's location names the member of a union it tried
        annotation = (models or options or [None])[0]
        origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    if origin in (list, tuple, set):
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None
