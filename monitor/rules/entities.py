"""Entities: gazetteers read from rules/entities/*.yaml (weapon systems, states, cue words) and pattern entities.

Gazetteer aliases go into the one automaton with the rules' terms; money and quantities are found by re2 patterns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from math import prod
from typing import Any, Callable

from .amounts import find_money, find_quantities
from .normalise import normalise_phrase

PATTERN_KINDS = ("money", "quantity")
BUILTIN_KINDS = ("speaker", "date", "question")  # document-level, computed by document.py
UNREPORTED_BUILTINS = ("date", "question")
# A detected language whose blocks are written under another code: py3langid says "no" for Norwegian, whose blocks
# (and simplemma's dictionary) are "nb", Bokmål.
BLOCK_LANGUAGE = {"no": "nb"}
# Language blocks of a gazetteer kind: the languages monitor has cue lists for, and others simplemma knows.
LANGUAGES = frozenset({
    "en", "de", "fr", "nl", "da", "pl", "uk", "ru", "es", "it", "pt", "sv", "nb", "nn", "fi", "cs", "sk", "sl", "hr",
    "sr", "bg", "ro", "hu", "el", "lt", "lv", "et", "tr", "ca", "ga", "is", "mk", "sq", "hy", "ka", "id", "ms",
})


@dataclass(frozen=True)
class Entity:
    """One canonical value (Ukraine) with the aliases that name it (Kyiv, Kiev, Ukrainian).

    An entity of a language block (`language` set) counts only in articles of that language (or of unknown
    language), and its aliases' last words match in every inflected form (`inflect`). An alias starting with "*"
    matches as the end of a longer word too: "*panzer" finds "Kampfpanzer" (compounds in de, nl, da, ...).
    """

    canonical: str
    aliases: tuple[str, ...]
    exact_case: tuple[str, ...] = ()  # aliases that only count with exactly this spelling ("US", not "us")
    language: str = ""
    inflect: bool = False
    exceptions: tuple[str, ...] = ()  # inflected forms not to use ("supplies" is goods, not a verb)


@dataclass(frozen=True)
class EntityKind:
    name: str
    entities: tuple[Entity, ...]
    report: bool = True  # shown in Match.entities (cue lists such as "hedge" are not)
    description: str = ""
    source: str = ""  # file:line where it was defined


@dataclass
class Gazetteer:
    kinds: dict[str, EntityKind] = field(default_factory=dict)

    def reportable(self, kind: str) -> bool:
        k = self.kinds.get(kind)
        return kind not in UNREPORTED_BUILTINS if k is None else k.report


def parse_kinds(data: Any, where: Callable[[tuple[Any, ...]], str]) -> tuple[list[EntityKind], list[str]]:
    """Entity kinds from one gazetteer file's data. `where(path)` gives file:line:column for messages."""
    problems: list[str] = []
    kinds: list[EntityKind] = []
    if not isinstance(data, dict):
        return [], [f"{where(())}: an entity file is a mapping of kind name -> {{entries: [...]}}"]
    for name, body in data.items():
        path: tuple[Any, ...] = (name,)
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            problems.append(f"{where(path)}: entity kind name must be a word, got {name!r}")
            continue
        if name in PATTERN_KINDS or name in BUILTIN_KINDS:
            problems.append(f"{where(path)}: {name!r} is a built-in entity and cannot be redefined")
            continue
        if not isinstance(body, dict):
            problems.append(f"{where(path)}: kind {name!r} needs a mapping with 'entries'")
            continue
        unknown = set(body) - {"entries", "report", "description"} - LANGUAGES
        for key in sorted(unknown, key=str):
            problems.append(f"{where(path + (key,))}: unknown key {key!r} (allowed: entries, report, description, "
                            "or a language code such as en, de, fr)")
        if not isinstance(body.get("report", True), bool):
            problems.append(f"{where(path + ('report',))}: 'report' must be true or false")
        blocks = [(key, body[key]) for key in ("entries", *sorted(set(body) & LANGUAGES)) if key in body]
        if not blocks:
            problems.append(f"{where(path)}: kind {name!r} needs 'entries' or a language block (en:, de:, ...)")
            continue
        parsed = []
        for key, entries in blocks:
            if not isinstance(entries, list) or not entries:
                problems.append(f"{where(path + (key,))}: {key!r} must be a non-empty list")
                continue
            language = "" if key == "entries" else key
            parsed.extend(_entry(e, path + (key, i), where, problems, language) for i, e in enumerate(entries))
        kinds.append(
            EntityKind(
                name=name,
                entities=tuple(p for p in parsed if p is not None),
                report=bool(body.get("report", True)),
                description=str(body.get("description", "")),
                source=where(path),
            )
        )
    return kinds, problems


def _entry(item: Any, path: tuple[Any, ...], where: Callable, problems: list[str],
           language: str = "") -> Entity | None:
    """Accepted forms: "Patriot" | {"Leopard 2": [aliases]} | {name: | value:, aliases:, exact_case:, literal:}.

    A `name` is the canonical value and an alias; a `value` is only the canonical value ("3" for March).
    """
    inflect = bool(language)
    if isinstance(item, str) and item.strip():
        return Entity(item.strip(), (item.strip(),), language=language, inflect=inflect)
    if isinstance(item, dict) and ("name" in item or "value" in item):
        unknown = set(item) - {"name", "value", "aliases", "exact_case", "literal", "except"}
        if unknown or ("name" in item and "value" in item):
            problems.append(f"{where(path)}: unknown key(s) {sorted(map(str, unknown))} (allowed: name or value, "
                            "aliases, exact_case, literal, except)" if unknown else
                            f"{where(path)}: an entry has a 'name' (also an alias) or a 'value' (only a value)")
            return None
        aliases, exact = item.get("aliases", []) or [], item.get("exact_case", []) or []
        canonical = item.get("name", item.get("value"))
        if not _strings(aliases) or not _strings(exact) or not isinstance(canonical, str):
            problems.append(f"{where(path)}: name must be text, aliases and exact_case lists of text")
            return None
        if not isinstance(item.get("literal", False), bool):
            problems.append(f"{where(path)}: 'literal' must be true or false")
            return None
        if not _strings(item.get("except", []) or []):
            problems.append(f"{where(path)}: 'except' must be a list of word forms")
            return None
        if "value" in item and not (aliases or exact):
            problems.append(f"{where(path)}: an entry with a 'value' needs 'aliases' or 'exact_case'")
            return None
        named = (canonical,) if "name" in item else ()
        names = [n for n in (*named, *aliases) if n not in exact]  # an exact-case name is not folded too
        return Entity(canonical, tuple(names), tuple(exact), language=language,
                      inflect=inflect and not item.get("literal", False),
                      exceptions=tuple(item.get("except", []) or []))
    if isinstance(item, dict) and len(item) == 1:
        (name, aliases), = item.items()
        if isinstance(name, str) and _strings(aliases or []):
            return Entity(name, (name, *(aliases or [])), language=language, inflect=inflect)
    problems.append(f"{where(path)}: an entry is a name, {{name: [aliases]}} or "
                    "{name:, aliases:, exact_case:, literal:}")
    return None


# Verb particles: in "hand over", "rule out", "sagte zu", "stellt bereit" the verb, not the particle, inflects.
PARTICLES: dict[str, frozenset[str]] = {
    "en": frozenset("over off for up out in on to with away back down through ahead about".split()),
    "de": frozenset("zu ab an auf aus bei ein mit nach vor weg bereit frei fest los zurück hin her über um durch "
                    "dar fort zusammen".split()),
    "nl": frozenset("toe aan op uit in mee af over door vrij terug beschikbaar".split()),
    "da": frozenset("over til ud op med af frem væk på ind".split()),
    "fr": frozenset(),
    "pl": frozenset(),
    "uk": frozenset(),
    "ru": frozenset(),
}


MAX_VARIANTS = 300  # inflected variants of one phrase (each word's forms multiplied): beyond, only the head inflects


def inflect_gazetteer(gazetteer: Gazetteer) -> Gazetteer:
    """The gazetteer with each inflecting alias's words replaced by all their forms (see lemmas.py)."""
    from .lemmas import inflections

    forms = inflections(inflecting_words(gazetteer))
    out = Gazetteer()
    for name, kind in gazetteer.kinds.items():
        entities = tuple(_inflected(ent, forms.get(ent.language, {})) if ent.inflect else ent
                         for ent in kind.entities)
        out.kinds[name] = EntityKind(kind.name, entities, kind.report, kind.description, kind.source)
    return out


def inflecting_words(gazetteer: Gazetteer) -> dict[str, set[str]]:
    """language -> the words of its blocks' aliases whose inflected forms are needed."""
    wanted: dict[str, set[str]] = {}
    for _kind, ent, _alias, word in inflecting_aliases(gazetteer):
        wanted.setdefault(ent.language, set()).add(word)
    return wanted


def inflecting_aliases(gazetteer: Gazetteer):
    """(kind name, entity, alias, word) for every word of an alias that matches in its inflected forms."""
    for kind in gazetteer.kinds.values():
        for ent in kind.entities:
            if ent.inflect:
                for alias in ent.aliases:
                    words = alias.split()
                    for i in _inflecting(words, ent.language):
                        yield kind.name, ent, alias, words[i].lstrip("*")


def _head(words: list[str], language: str) -> int:
    """Index of the word that carries the inflection: the last, or the first when the last is a verb particle."""
    if len(words) > 1 and words[-1].lower() in PARTICLES.get(language, ()):
        return 0
    return len(words) - 1


def _inflecting(words: list[str], language: str) -> list[int]:
    """Which words inflect: in English the head only; in languages whose adjectives agree with their noun
    ("militärischer Hilfe", "військової допомоги") every word but particles, "..." and words of two letters."""
    if not words:
        return []
    if language == "en":
        return [_head(words, language)]
    found = [i for i, w in enumerate(words)
             if w != "..." and len(w.lstrip("*")) > 2 and w.lower() not in PARTICLES.get(language, ())]
    return found or [_head(words, language)]


def _inflected(ent: Entity, forms: dict[str, tuple[str, ...]]) -> Entity:
    aliases: dict[str, None] = {}
    skip = {normalise_phrase(x) for x in ent.exceptions}

    def options(word: str) -> list[str]:
        star = "*" if word.startswith("*") else ""
        bare = word.lstrip("*")
        return [star + f for f in forms.get(bare, (bare,)) if f == normalise_phrase(bare) or f not in skip]

    for alias in ent.aliases:
        words = alias.split()
        at = _inflecting(words, ent.language)
        choices = [options(w) if i in at else [w] for i, w in enumerate(words)]
        if prod(len(c) for c in choices) > MAX_VARIANTS:
            head = _head(words, ent.language)
            choices = [options(w) if i == head else [w] for i, w in enumerate(words)]
        for variant in product(*choices):
            aliases[" ".join(variant)] = None
    return Entity(ent.canonical, tuple(aliases), ent.exact_case, ent.language, inflect=False)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


# pattern entities ------------------------------------------------------------------------------------------------
PATTERN_FINDERS: dict[str, Callable[[str], list[tuple[int, int, str]]]] = {
    "money": find_money,
    "quantity": find_quantities,
}
