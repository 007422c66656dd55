"""The language of a text (py3langid), which picks the rules' cue lists and the segmenter's conventions.

Light on purpose: the rule tools use it without importing the extraction stack.
"""

from __future__ import annotations

from functools import lru_cache

LANGUAGE_SAMPLE = 1500  # characters: every extracted corpus text gets the same language from 1,000 as from 5,000
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
    sample = text[:LANGUAGE_SAMPLE]
    if sum(ch.isalpha() for ch in sample[:400]) < 20:
        return ""
    lang, confidence = _identifier().classify(sample)
    return lang if confidence >= LANGUAGE_MIN_CONFIDENCE else ""
