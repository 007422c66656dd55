"""Loads a rules folder: safe YAML (duplicate keys rejected), pydantic validation, queries parsed, one RuleSet.

Every problem in every file is collected and raised at once as RuleError lines `file:line:column: message`.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from ..errors import RuleError
from ..yamlsafe import Doc, Path_, did_you_mean, parse_yaml, unknown_key_hint
from .entities import BUILTIN_KINDS, PATTERN_KINDS, Gazetteer, inflect_gazetteer, parse_kinds
from .matcher import Example, Rule, RuleSet
from .query import QueryError, keyword_query, parse_query
from .schema import ExampleFile, RuleFile, RuleSpec

log = logging.getLogger(__name__)

ENTITY_DIR = "entities"


def rule_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(entity files, rule files) under `folder`, sorted; hidden files and folders are skipped."""
    found = sorted(p for ext in ("*.yaml", "*.yml") for p in folder.rglob(ext))
    found = [p for p in found if not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)]
    entity_dir = folder / ENTITY_DIR
    entities = [p for p in found if entity_dir in p.parents]
    return entities, [p for p in found if entity_dir not in p.parents]


def load_rules(path: str | Path, *, known_channels: Iterable[str] | None = None) -> RuleSet:
    """Load, validate and compile every rule and entity file under `path`. Raises RuleError listing all problems.

    `path` may also be one rule file: its rules with the gazetteers of its folder's `entities/`.
    """
    folder = Path(path)
    single = folder if folder.is_file() else None  # one rule file: its folder's entities, only its rules
    if single is not None:
        folder = single.parent
    elif not folder.is_dir():
        raise RuleError(f"{folder}: rules folder not found")
    problems: list[str] = []
    entity_paths, rule_paths = rule_files(folder)
    if single is not None:
        rule_paths = [single]
    docs = {p: parse_yaml(p, _label(p), problems) for p in (*entity_paths, *rule_paths)}
    gazetteer = _gazetteer([docs[p] for p in entity_paths if docs[p]], problems)
    rules = _rules([docs[p] for p in rule_paths if docs[p]], gazetteer, set(known_channels or ()), problems)
    if not rule_paths:
        problems.append(f"{folder}: no rule files (*.yaml) found")
    if problems:
        raise RuleError(f"{folder}: {len(problems)} problem(s) in the rules", problems)
    version = _version(folder, (*entity_paths, *rule_paths), docs)
    ruleset = RuleSet(tuple(rules), gazetteer, version=version,
                      source_files=tuple(_label(p) for p in (*entity_paths, *rule_paths)))
    log.info("loaded %d rules (%d entity kinds) from %s, version %s", len(rules), len(gazetteer.kinds), folder,
             version[:12])
    return ruleset


def _label(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _version(folder: Path, paths: Iterable[Path], docs: dict[Path, Doc | None]) -> str:
    h = hashlib.sha256()
    for p in paths:
        doc = docs[p]
        h.update(str(p.relative_to(folder)).encode() + b"\0" + (doc.raw.encode() if doc else b"") + b"\0")
    return h.hexdigest()


def load_gazetteer(path: str | Path) -> Gazetteer:
    """The entity kinds of a rules folder as written (before inflection); raises RuleError on any problem."""
    problems: list[str] = []
    entity_paths, _rules_paths = rule_files(Path(path))
    docs = [d for d in (parse_yaml(p, _label(p), problems) for p in entity_paths) if d]
    gaz = _gazetteer(docs, problems, inflect=False)
    if problems:
        raise RuleError(f"{path}: {len(problems)} problem(s) in the entity files", problems)
    return gaz


def _gazetteer(docs: list[Doc], problems: list[str], *, inflect: bool = True) -> Gazetteer:
    gaz = Gazetteer()
    for doc in docs:
        kinds, errs = parse_kinds(doc.data, doc.where)
        problems.extend(errs)
        for kind in kinds:
            if kind.name in gaz.kinds:
                problems.append(f"{kind.source}: entity kind {kind.name!r} already defined at "
                                f"{gaz.kinds[kind.name].source}")
                continue
            gaz.kinds[kind.name] = kind
    return inflect_gazetteer(gaz) if inflect else gaz


def _rules(docs: list[Doc], gaz: Gazetteer, channels: set[str], problems: list[str]) -> list[Rule]:
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for doc in docs:
        try:
            spec_file = RuleFile.model_validate(doc.data)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(doc, exc))
            continue
        for i, spec in enumerate(spec_file.rules):
            where = doc.where(("rules", i))
            if spec.id in seen:
                problems.append(f"{doc.where(('rules', i, 'id'))}: duplicate rule id {spec.id!r} "
                                f"(first at {seen[spec.id]})")
                continue
            seen[spec.id] = where
            rule = _rule(doc, i, spec, gaz, channels, problems)
            if rule is not None:
                rules.append(rule)
    return rules


def _pydantic_problems(doc: Doc, exc: ValidationError) -> list[str]:
    """One line per error: `file:line:col: rule <id>: <key path in the rule>: message` (the id when it has one)."""
    out = []
    for err in exc.errors():
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x in ("str", "ExampleFile")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + unknown_key_hint(RuleFile, loc)
        rule_id = _rule_id(doc, loc)
        inner = loc[2:] if rule_id else loc
        key = ".".join(str(x) for x in inner) or ("(the rule)" if rule_id else "(top level)")
        out.append(f"{doc.where(loc)}: " + (f"rule {rule_id}: " if rule_id else "") + f"{key}: {msg}")
    return out


def _rule_id(doc: Doc, loc: tuple) -> str:
    """The id written in the rule that `loc` points into (rules, i, ...), if it has a usable one."""
    if len(loc) < 2 or loc[0] != "rules" or not isinstance(loc[1], int) or not isinstance(doc.data, dict):
        return ""
    rules = doc.data.get("rules")
    rule = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
    rule_id = rule.get("id") if isinstance(rule, dict) else None
    return rule_id if isinstance(rule_id, str) and rule_id else ""


def _rule(doc: Doc, i: int, spec: RuleSpec, gaz: Gazetteer, channels: set[str], problems: list[str]) -> Rule | None:
    base = ("rules", i)
    known = lambda kind: kind in gaz.kinds or kind in PATTERN_KINDS or kind in BUILTIN_KINDS  # noqa: E731
    try:
        if spec.query is not None:
            node = parse_query(spec.query, known)
        else:
            node = keyword_query(spec.all_, spec.any_, spec.none)
    except QueryError as exc:
        if spec.query is not None:
            at = doc.where_in_value(base + ("query",), exc.token, exc.pos, spec.query)
        else:
            at = doc.where(base + ("all",))
        token = f" (at {exc.token!r})" if exc.token else ""
        problems.append(f"{at}: rule {spec.id}: {exc}{token}")
        return None
    for j, ch in enumerate(spec.channels):
        if channels and ch not in channels:
            problems.append(f"{doc.where(base + ('channels', j))}: rule {spec.id}: unknown channel {ch!r}"
                            f"{did_you_mean(ch, channels)} (known channels and tags: {', '.join(sorted(channels))})")
    for name, fs in spec.fields.items():
        for kind in (*fs.kinds(), *fs.fallback_kinds()):
            if not known(kind):
                problems.append(f"{doc.where(base + ('fields', name))}: rule {spec.id}: unknown entity kind {kind!r}")
        if fs.within_not is not None:
            try:
                parse_query(fs.within_not, known)
            except QueryError as exc:
                at = doc.where_in_value(base + ("fields", name, "within_not"), exc.token, exc.pos, fs.within_not)
                token = f" (at {exc.token!r})" if exc.token else ""
                problems.append(f"{at}: rule {spec.id}: fields.{name}.within_not: {exc}{token}")
        for other in fs.exclude:
            if other not in spec.fields or other == name:
                problems.append(f"{doc.where(base + ('fields', name, 'exclude'))}: rule {spec.id}: "
                                f"exclude names another field of this rule, got {other!r}")
    examples = _examples(doc, base, spec, problems)
    query = spec.query if spec.query is not None else str(node)
    return Rule(id=spec.id, title=spec.title or spec.id, node=node, query=query.strip(), severity=spec.severity,
                channels=tuple(spec.channels), enabled=spec.enabled, owner=spec.owner,
                description=spec.description, fields=dict(spec.fields), examples=tuple(examples),
                source=doc.where(base))


def _examples(doc: Doc, base: Path_, spec: RuleSpec, problems: list[str]) -> list[Example]:
    out: list[Example] = []
    for key, expect in (("match", True), ("no_match", False)):
        for j, item in enumerate(getattr(spec.examples, key)):
            if isinstance(item, ExampleFile) and item.text:
                out.append(Example(item.text, expect, f"{key}[{j}] ({doc.where(base + ('examples', key, j))})",
                                   item.title))
            elif isinstance(item, ExampleFile):
                target = (doc.path.parent / item.file).resolve()
                try:
                    text = target.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    # The daemon does not need examples; a rules folder deployed without them still loads.
                    error = f"{doc.where(base + ('examples', key, j))}: cannot read example file {item.file!r}: {exc}"
                    out.append(Example("", expect, item.file, item.title, error=error))
                    continue
                out.append(Example(text, expect, item.file, item.title))
            else:
                out.append(Example(item, expect, f"{key}[{j}] ({doc.where(base + ('examples', key, j))})"))
    return out
