"""The language of a text (py3langid), which picks the rules' cue lists and the segmenter's conventions.

Light on purpose: the rule tools use it without importing the extraction stack.
"""

from __future__ import annotations

from functools import lru_cache

LANGUAGE_SAMPLE = 1500  # characters: every extracted corpus text gets the same language from 1,000 as from 5,000
# The first look is at fewer characters (py3langid's cost is linear in them: 0.46 ms against 1.05 ms); only a guess
# less sure than LANGUAGE_SURE looks again at LANGUAGE_SAMPLE. On the 140 corpus texts and the 160 labelled
# pledge-dev texts this gives the language the 1,500 characters give, every time (a 500-character sample alone
# does not: 2 of the pledge-dev texts lose theirs). Measured by `python -m bench.language_sample`.
LANGUAGE_FIRST_SAMPLE = 500
LANGUAGE_SURE = 0.99
LANGUAGE_MIN_CONFIDENCE = 0.5


def load_model() -> None:
    """Load the model now. The daemon does so before its workers fork: they then share its ~75 MB instead of each
    loading a private copy at its first article."""
    _identifier()


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, "" when the text is too short or the guess is unsure."""
    if sum(ch.isalpha() for ch in text[:400]) < 20:
        return ""
    identifier = _identifier()
    lang, confidence = identifier.classify(text[:LANGUAGE_FIRST_SAMPLE])
    if confidence < LANGUAGE_SURE and len(text) > LANGUAGE_FIRST_SAMPLE:
        lang, confidence = identifier.classify(text[:LANGUAGE_SAMPLE])
    return lang if confidence >= LANGUAGE_MIN_CONFIDENCE else ""
