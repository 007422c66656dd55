"""The language of a text (py3langid), which picks the rules' cue lists and the segmenter's conventions.

Light on purpose: the rule tools use it without importing the extraction stack.
"""

from __future__ import annotations

from functools import lru_cache

LANGUAGE_SAMPLE = 5000  # characters: enough for a confident guess, cheap on long pages
LANGUAGE_MIN_CONFIDENCE = 0.5


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, "" when the text is too short or the guess is unsure."""
    sample = text[:LANGUAGE_SAMPLE]
    if sum(ch.isalpha() for ch in sample[:400]) < 20:
        return ""
    lang, confidence = _identifier().classify(sample)
    return lang if confidence >= LANGUAGE_MIN_CONFIDENCE else ""
