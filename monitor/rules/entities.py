"""Entities: gazetteers read from rules/entities/*.yaml (weapon systems, states, cue words) and pattern entities.

Gazetteer aliases go into the one automaton with the rules' terms; money and quantities are found by re2 patterns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import re2

PATTERN_KINDS = ("money", "quantity")
BUILTIN_KINDS = ("speaker", "date", "question")  # document-level, computed by document.py
UNREPORTED_BUILTINS = ("date", "question")
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
    """Accepted forms: "Patriot" | {"Leopard 2": [aliases]} | {name:, aliases:, exact_case:, literal:}."""
    inflect = bool(language)
    if isinstance(item, str) and item.strip():
        return Entity(item.strip(), (item.strip(),), language=language, inflect=inflect)
    if isinstance(item, dict) and "name" in item:
        unknown = set(item) - {"name", "aliases", "exact_case", "literal"}
        if unknown:
            problems.append(f"{where(path)}: unknown key(s) {sorted(map(str, unknown))} "
                            "(allowed: name, aliases, exact_case, literal)")
            return None
        aliases, exact = item.get("aliases", []) or [], item.get("exact_case", []) or []
        if not _strings(aliases) or not _strings(exact) or not isinstance(item["name"], str):
            problems.append(f"{where(path)}: name must be text, aliases and exact_case lists of text")
            return None
        if not isinstance(item.get("literal", False), bool):
            problems.append(f"{where(path)}: 'literal' must be true or false")
            return None
        names = [n for n in (item["name"], *aliases) if n not in exact]  # an exact-case name is not folded too
        return Entity(item["name"], tuple(names), tuple(exact), language=language,
                      inflect=inflect and not item.get("literal", False))
    if isinstance(item, dict) and len(item) == 1:
        (name, aliases), = item.items()
        if isinstance(name, str) and _strings(aliases or []):
            return Entity(name, (name, *(aliases or [])), language=language, inflect=inflect)
    problems.append(f"{where(path)}: an entry is a name, {{name: [aliases]}} or "
                    "{name:, aliases:, exact_case:, literal:}")
    return None


def inflect_gazetteer(gazetteer: Gazetteer) -> Gazetteer:
    """The gazetteer with each inflecting alias's last word replaced by all its forms (see lemmas.py)."""
    from .lemmas import inflections

    wanted: dict[str, set[str]] = {}
    for kind in gazetteer.kinds.values():
        for ent in kind.entities:
            if ent.inflect:
                wanted.setdefault(ent.language, set()).update(_head(a) for a in ent.aliases)
    forms = {lang: inflections(lang, words) for lang, words in wanted.items()}
    out = Gazetteer()
    for name, kind in gazetteer.kinds.items():
        entities = tuple(_inflected(ent, forms.get(ent.language, {})) if ent.inflect else ent
                         for ent in kind.entities)
        out.kinds[name] = EntityKind(kind.name, entities, kind.report, kind.description, kind.source)
    return out


def _head(alias: str) -> str:
    words = alias.lstrip("*").split()
    return words[-1] if words else ""


def _inflected(ent: Entity, forms: dict[str, tuple[str, ...]]) -> Entity:
    aliases: dict[str, None] = {}
    for alias in ent.aliases:
        head = _head(alias)
        stem = alias[: len(alias.rstrip()) - len(head)] if head else alias
        for form in forms.get(head, (head,)):
            aliases[stem + form] = None
    return Entity(ent.canonical, tuple(aliases), ent.exact_case, ent.language, inflect=False)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


# pattern entities ------------------------------------------------------------------------------------------------
_NUMWORD = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|"
    r"a hundred|a dozen|dozens of|scores of|hundreds of|thousands of|several"
)
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|" + _NUMWORD + r")"
_MULT = r"(?:trillion|billion|million|thousand|bn|mn|tn|m|k)"
_CURRENCY_WORD = (
    r"(?:euros?|dollars|pounds(?: sterling)?|(?:swiss )?francs|kronor|kroner|crowns|yen|zlotys?|hryvnias?|"
    r"rubles|roubles)"
)
_UNIT = (
    r"(?:battle tanks?|tanks?|shells?|rounds?|missiles?|rockets?|launchers?|systems?|vehicles?|jets?|aircraft|"
    r"fighters?|helicopters?|howitzers?|guns?|drones?|batter(?:y|ies)|units?|carriers?|interceptors?|warplanes?|"
    r"ships?|boats?|munitions|grenades?|mines?|rifles?|bombs?|projectiles?)"
)
_MONEY = re2.compile(
    r"(?i)(?:(?:US\$|A\$|C\$|\$|€|£|\bUSD|\bEUR|\bGBP|\bCHF)\s?\d[\d,.]*\d?(?:\s?" + _MULT + r"\b)?"
    r"|\b\d[\d,.]*\s?(?:" + _MULT + r"\s)?" + _CURRENCY_WORD + r"\b"
    r"|\b(?:single|double|two|three|four|five|six|seven|eight|nine|ten)[- ]digit (?:million|billion) "
    r"(?:euro|dollar|pound|franc)s? (?:sum|amount|figure)"
    r"|\b(?:hundreds|tens) of (?:millions|billions) of (?:euros|dollars|pounds))"
)
_QUANTITY = re2.compile(r"(?i)\b(" + _NUM + r")\s+(?:[\w-]+\s+){0,3}?" + _UNIT + r"\b")


def find_money(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of sums of money in the original text."""
    out = []
    for m in _MONEY.finditer(text):
        value = " ".join(m.group(0).split()).rstrip(".,")
        if any(c.isdigit() for c in value) or "digit" in value or " of " in value:
            out.append((m.start(), m.start() + len(value), value))
    return out


def find_quantities(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of counted things: "14 Leopard-2 battle tanks", "dozens of drones"."""
    out = []
    for m in _QUANTITY.finditer(text):
        number = m.group(1)
        if len(number) == 4 and number.isdigit() and number[:2] in ("19", "20"):
            continue  # a year, not a count
        rest = m.group(0)[len(number) :].split()
        if rest and rest[0].lower() in ("mm", "mm-", "millimetre", "millimeter", "cm", "km"):
            continue  # a calibre or distance, not a count
        before = text[max(0, m.start() - 20) : m.start()]
        if before[-1:] in ("-",) or (before.endswith(" ") and before.split()[-1:][0][:1].isupper() if before.split() else False):
            continue  # "Leopard 2 tanks", "F-16 jets": the number is part of a name
        out.append((m.start(), m.end(), " ".join(m.group(0).split())))
    return out


PATTERN_FINDERS: dict[str, Callable[[str], list[tuple[int, int, str]]]] = {
    "money": find_money,
    "quantity": find_quantities,
}
