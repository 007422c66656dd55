"""Inflected forms of the words in gazetteer language blocks, from simplemma's dictionaries (no hand-listed forms).

simplemma maps form -> lemma; matching needs lemma -> forms, so the dictionary is read once per language in a child
process (a dictionary is 20-400 MB in memory) and the forms asked for are cached on disk as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from .normalise import fold_text

log = logging.getLogger(__name__)

CACHE_VERSION = 3
TIMEOUT = 120.0  # seconds for one language's dictionary (Polish, the largest, takes ~5 s here)


def cache_dir() -> Path | None:
    """Where forms are cached: $MONITOR_CACHE_DIR, systemd's $CACHE_DIRECTORY, else ~/.cache/monitor."""
    for var in ("MONITOR_CACHE_DIR", "CACHE_DIRECTORY"):
        if os.environ.get(var):
            return Path(os.environ[var].split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache" if Path.home() != Path("/") else None)
    return Path(base) / "monitor" if base else None


def _folded(word: str) -> str:
    return " ".join(fold_text(word).split())


def inflections(language: str, words: set[str]) -> dict[str, tuple[str, ...]]:
    """word -> every folded form of its lemma in `language` (the word itself included), for the words asked."""
    wanted = {w for w in words if w}
    if not wanted:
        return {}
    cached = _read_cache(language)
    missing = wanted - set(cached)
    if missing:
        cached.update(_compute(language, missing))
        _write_cache(language, cached)
    return {w: tuple(cached.get(w, (_folded(w),))) for w in wanted}


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
    path = _cache_file(language)
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a damaged cache is rebuilt


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


def scan(language: str, words: list[str]) -> dict[str, list[str]]:
    """word -> folded forms of its lemma: the lemma of each word, every dictionary form with that lemma, and the
    regular forms simplemma lemmatises to it."""
    import simplemma
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    try:
        dictionary = DefaultDictionaryFactory().get_dictionary(language)
    except (ValueError, KeyError, OSError):
        return {w: [_folded(w)] for w in words}
    # the word as written is the lemma when the dictionary has forms of it ("levere"), else simplemma's lemma
    guesses = {w: {_folded(w), _folded(simplemma.lemmatize(w, lang=language))} for w in words}
    forms: dict[str, set[str]] = {g: {g} for gs in guesses.values() for g in gs}
    for form, lemma in dictionary.items():
        lemma_s = lemma.decode() if isinstance(lemma, bytes) else lemma
        target = forms.get(_folded(lemma_s))
        if target is not None:
            folded = _folded(form.decode() if isinstance(form, bytes) else form)
            if len(folded) > 2 and " " not in folded:  # clitics ("'ll") and short forms (Danish "be") collide
                target.add(folded)
    out = {}
    for w in words:
        own = _folded(w)
        lemma = own if len(forms[own]) > 1 else _folded(simplemma.lemmatize(w, lang=language))
        found = set(forms[lemma])
        for candidate in _candidates(lemma, language):
            if len(candidate) > 2 and _folded(simplemma.lemmatize(candidate, lang=language)) in (lemma, own):
                found.add(_folded(candidate))
        out[w] = sorted(found | {own})
    return out


def main() -> None:
    request = json.loads(sys.stdin.read())
    json.dump(scan(request["language"], list(request["words"])), sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
