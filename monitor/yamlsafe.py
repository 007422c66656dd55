"""Safe YAML loading that remembers where every key and value stood, and rejects duplicate keys.

Errors found later (pydantic validation) are mapped back to `file:line:column` through `LoadedYaml.where`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[Any, ...]


class YamlError(ValueError):
    """The text is not valid YAML for us; `problems` are `file:line:column: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class LoadedYaml:
    data: Any
    source: str
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # path -> (line, column), 1-based

    def where(self, path: Path_) -> str:
        """`file:line:column` of the deepest known node on `path`."""
        path = tuple(path)
        while path and path not in self.marks:
            path = path[:-1]
        line, col = self.marks.get(path, (1, 1))
        return f"{self.source}:{line}:{col}"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_yaml(text: str, source: str) -> LoadedYaml:
    """Parse one YAML document with the safe constructors only. Raises YamlError."""
    loader = yaml.SafeLoader(text)
    result = LoadedYaml(None, source)
    problems: list[str] = []

    def walk(node: yaml.Node, path: Path_) -> Any:
        result.marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if key in out:
                    line, col = _mark(key_node)
                    problems.append(f"{source}:{line}:{col}: duplicate key {key!r}")
                    continue
                result.marks[path + (key,)] = _mark(key_node)
                out[key] = walk(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [walk(child, path + (i,)) for i, child in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    try:
        node = loader.get_single_node()
        result.data = walk(node, ()) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problems.append(f"{where}: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        problems.append(f"{source}: {exc}")
    finally:
        loader.dispose()
    if problems:
        raise YamlError(problems)
    return result
