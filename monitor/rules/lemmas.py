"""Inflected forms of the words in gazetteer language blocks, from simplemma's dictionaries (no hand-listed forms).

simplemma maps form -> lemma; matching needs lemma -> forms, so the dictionary is read once per language in a child
process (a dictionary is 20-400 MB in memory) and the forms asked for are cached on disk as JSON.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..cache import cache_dir
from .normalise import fold_text

log = logging.getLogger(__name__)

CACHE_VERSION = 7
SEED = Path(__file__).with_name("inflections.json.gz")  # the shipped pack's words, so a first start is quick
TIMEOUT = 120.0  # seconds for one language's dictionary (Polish, the largest, takes ~5 s here)


def _folded(word: str) -> str:
    return " ".join(fold_text(word).split())


def inflections(wanted: dict[str, set[str]]) -> dict[str, dict[str, tuple[str, ...]]]:
    """language -> word -> every folded form of its lemma (the word itself included), for the words asked.

    Languages whose words are not all cached are computed side by side, one child process each."""
    out: dict[str, dict[str, list[str]]] = {}
    missing: dict[str, set[str]] = {}
    for language, words in wanted.items():
        out[language] = _read_cache(language)
        todo = {w for w in words if w} - set(out[language])
        if todo:
            missing[language] = todo
    if missing:
        with ThreadPoolExecutor(max_workers=max(1, min(len(missing), os.cpu_count() or 1))) as pool:
            computed = dict(zip(missing, pool.map(lambda kv: _compute(*kv), missing.items())))
        for language, forms in computed.items():
            out[language].update(forms)
            _write_cache(language, out[language])
    return {lang: {w: tuple(out[lang].get(w, (_folded(w),))) for w in words if w} for lang, words in wanted.items()}


@lru_cache(maxsize=1)
def _simplemma_version() -> str:
    from importlib.metadata import version

    return version("simplemma")


def _cache_file(language: str) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    return folder / f"inflections-v{CACHE_VERSION}-simplemma{_simplemma_version()}-{language}.json"


def _read_cache(language: str) -> dict[str, list[str]]:
    """The shipped seed (the shipped pack's words, for the simplemma it was made with), then the local cache."""
    data = dict(_seed().get(language, {}))
    path = _cache_file(language)
    if path is not None and path.exists():
        try:
            local = json.loads(path.read_text(encoding="utf-8"))
            data.update(local if isinstance(local, dict) else {})
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt
    return data


@lru_cache(maxsize=1)
def _seed() -> dict[str, dict[str, list[str]]]:
    try:
        with gzip.open(SEED, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    ok = data.get("simplemma") == _simplemma_version() and data.get("version") == CACHE_VERSION
    return data.get("languages", {}) if ok else {}


def write_seed(rules_folder: str) -> None:
    """Regenerate SEED for the words of a rules folder (the shipped pack): `python -m monitor.rules.lemmas --seed
    rules`. The seed is only a cache of what simplemma gives; a different simplemma version ignores it."""
    from .entities import inflecting_words
    from .loader import load_gazetteer

    wanted = inflecting_words(load_gazetteer(rules_folder))
    languages = {lang: scan(lang, sorted(words)) for lang, words in sorted(wanted.items())}
    data = json.dumps({"simplemma": _simplemma_version(), "version": CACHE_VERSION, "languages": languages},
                      ensure_ascii=False, sort_keys=True).encode("utf-8")
    SEED.write_bytes(gzip.compress(data, mtime=0))  # mtime 0: the same words give the same bytes


def _write_cache(language: str, data: dict[str, list[str]]) -> None:
    path = _cache_file(language)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot cache inflected forms in %s: %s (they are computed again next time)", path, exc)


def _compute(language: str, words: set[str]) -> dict[str, list[str]]:
    """Run the dictionary scan in a child process, so its memory is returned when it exits."""
    request = json.dumps({"language": language, "words": sorted(words)})
    try:
        done = subprocess.run([sys.executable, "-m", "monitor.rules.lemmas"], input=request, capture_output=True,
                              text=True, timeout=TIMEOUT, check=True)
        return json.loads(done.stdout)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        log.warning("inflected forms for %s unavailable (%s); words match as written", language,
                    detail.strip().splitlines()[-1:] or detail)
        return {w: [_folded(w)] for w in words}


# Endings tried on a lemma's stems; a candidate is kept only if simplemma lemmatises it back to the lemma. This
# adds the regular forms a language's dictionary lacks (Danish "leverer", Dutch "stuurt") without listing forms.
ENDINGS: dict[str, tuple[str, ...]] = {
    "en": ("s", "es", "ed", "d", "ing", "en", "n"),
    "de": ("e", "en", "n", "t", "te", "ten", "st", "et", "est", "end", "s", "es", "er", "ern"),
    "nl": ("t", "de", "te", "den", "ten", "en", "n", "d", "s", "e"),
    "da": ("r", "er", "de", "ede", "te", "t", "et", "s", "es", "en", "ne", "n", "ene"),
}


def _candidates(lemma: str, language: str) -> set[str]:
    endings = ENDINGS.get(language)
    if not endings or " " in lemma:
        return set()
    stems = {lemma, lemma[:-1], lemma[:-2], lemma + lemma[-1:]}
    out = {stem + end for stem in stems if len(stem) > 2 for end in endings}
    if language in ("de", "nl"):
        out |= {"ge" + stem + end for stem in stems if len(stem) > 2 for end in ("t", "d", "en", "te", "de")}
    return out


INSEPARABLE = ("be", "emp", "ent", "er", "ge", "miss", "ver", "zer")


# Regular past participles of Spanish, Portuguese and Italian verbs, by the infinitive's ending: each in its four
# forms (masculine, feminine, plural). Italian -ere verbs are left out: theirs are mostly irregular (chiesto,
# promesso), and the dictionary lists those as forms of the verb.
_IBERIAN = {"ar": ("ado", "ada", "ados", "adas"), "er": ("ido", "ida", "idos", "idas"),
            "ir": ("ido", "ida", "idos", "idas")}
ROMANCE_PARTICIPLES: dict[str, dict[str, tuple[str, ...]]] = {
    "es": _IBERIAN,
    "pt": _IBERIAN,
    "it": {"are": ("ato", "ata", "ati", "ate"), "ire": ("ito", "ita", "iti", "ite")},
}


def participles(lemma: str, language: str) -> set[str]:
    """The regular past participle of a German, Spanish, Portuguese or Italian verb ("bedanken" -> "bedankt",
    "danken" -> "gedankt", "enviar" -> "enviado", "enviada", ...). simplemma's dictionary lists many participles as words of
    their own (an adjective "bedankt" with lemma "bedankt", the noun "enviado", envoy), so the lemma check of
    `_candidates` cannot find them; only the participle the regular rule builds from the verb's own stem is taken,
    and only when the dictionary knows that word (see `_known_participles`)."""
    if " " in lemma or not lemma.islower():
        return set()
    if language in ROMANCE_PARTICIPLES:
        for ending, forms in ROMANCE_PARTICIPLES[language].items():
            if lemma.endswith(ending) and len(lemma) > len(ending) + 2:
                return {lemma[: -len(ending)] + form for form in forms}
        return set()
    if language != "de" or not lemma.endswith(("en", "ern", "eln")):
        return set()
    stem = lemma[:-2] if lemma.endswith("en") and not lemma.endswith(("ern", "eln")) else lemma[:-1]
    ending = "et" if stem.endswith(("d", "t")) else "t"
    if lemma.startswith(INSEPARABLE) or lemma.endswith("ieren"):
        return {stem + ending}
    return {"ge" + stem + ending}


def _known_participles(dictionary: Any, lemma: str, language: str) -> set[str]:
    """The regular participles of `lemma` that the dictionary holds: a German one as a word of its own; a Romance
    one under any lemma (the feminine and plural come under the masculine adjective: "enviada" ->
    "enviado", "inviati" -> "inviato")."""
    if language in ROMANCE_PARTICIPLES:
        return {p for p in participles(lemma, language) if _lemma_of(dictionary, p) is not None}
    return {p for p in participles(lemma, language) if _own_entry(dictionary, p)}


def _lemma_of(dictionary: Any, word: str) -> str | None:
    try:
        lemma = dictionary.get(word)
    except (TypeError, AttributeError):
        return None
    return lemma.decode() if isinstance(lemma, bytes) else lemma


def _own_entry(dictionary: Any, word: str) -> bool:
    """Whether the dictionary lists `word` as its own lemma (a participle kept as an adjective)."""
    return _lemma_of(dictionary, word) == word


def scan(language: str, words: list[str]) -> dict[str, list[str]]:
    """word -> folded forms of its lemma: every dictionary form with that lemma, and the regular forms simplemma
    lemmatises back to it. The lemma is the word as written when the dictionary has forms of it ("levere"), else
    simplemma's lemma of it ("lieferte" -> "liefern")."""
    from simplemma import Lemmatizer
    from simplemma.strategies import DefaultStrategy
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    factory = DefaultDictionaryFactory()
    try:
        dictionary = factory.get_dictionary(language)
    except (ValueError, KeyError, OSError):
        return {w: [_folded(w)] for w in words}
    lemmatizer = Lemmatizer(lemmatization_strategy=DefaultStrategy(dictionary_factory=factory))
    guesses = {w: {w, w.lower(), w[:1].upper() + w[1:], lemmatizer.lemmatize(w, lang=language)} for w in words}
    heads = {w: _heads(w, language) for w in words}  # a compound the dictionary lacks inflects as its last part
    for w, hs in heads.items():
        guesses[w] |= set(hs)
    # dictionary lemmas are compared as stored (bytes), so only the forms of wanted lemmas are ever folded
    wanted = {g.encode(): _folded(g) for gs in guesses.values() for g in gs}
    forms: dict[str, set[str]] = {folded: {folded} for folded in wanted.values()}
    for form, lemma in dictionary.items():
        folded_lemma = wanted.get(lemma if isinstance(lemma, bytes) else lemma.encode())
        if folded_lemma is not None:
            folded = _folded(form.decode() if isinstance(form, bytes) else form)
            if len(folded) > 2 and " " not in folded:  # clitics ("'ll") and short forms (Danish "be") collide
                forms[folded_lemma].add(folded)
    out = {}
    for w in words:
        own = _folded(w)
        guess = lemmatizer.lemmatize(w, lang=language)
        raw = w if len(forms[own]) > 1 else guess
        lemma = _folded(raw)
        found = set(forms.get(lemma, {lemma}))
        if raw == w and own == _folded(guess) + "e":
            # an adjective's -e form that the dictionary also lists as a lemma ("militärische", whose lemma is
            # "militärisch"): the forms of the shorter lemma too ("militärischer", "militärischem")
            found |= forms.get(_folded(guess), set())
        # (the endings go on the lemma as written: folded, "militarisch" + "er" is no word the dictionary knows)
        for candidate in _candidates(raw, language):
            if len(candidate) > 2 and _folded(lemmatizer.lemmatize(candidate, lang=language)) in (lemma, own):
                found.add(_folded(candidate))
        found |= {_folded(p) for p in _known_participles(dictionary, lemma, language)}
        if found <= {own}:
            for head in heads[w]:  # the longest last part with forms of its own: "Flugabwehr|system" -> "...systeme"
                head_forms = forms.get(_folded(head), set())
                if len(head_forms) > 1:
                    prefix = own[: len(own) - len(_folded(head))]
                    found |= {prefix + f for f in head_forms if f.startswith(_folded(head)[:2])}
                    break
        out[w] = sorted(found | {own})
    return out


COMPOUNDING = ("de", "nl", "da", "sv", "nb")


def _heads(word: str, language: str) -> list[str]:
    """The last parts a compound of a compounding language may end in, longest first, as the dictionary writes them
    (German nouns capitalised): "Flugabwehrsystem" -> "Abwehrsystem", "System" ...; none for other words."""
    if language not in COMPOUNDING or not word.isalpha() or len(word) < 8:
        return []
    cut = range(3, len(word) - 3)
    return [word[i].upper() + word[i + 1:] if language == "de" else word[i:].lower() for i in cut]


def main() -> None:
    if sys.argv[1:2] == ["--seed"]:
        write_seed(sys.argv[2] if len(sys.argv) > 2 else "rules")
        return
    request = json.loads(sys.stdin.read())
    json.dump(scan(request["language"], list(request["words"])), sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
