"""Pure parts of dedup: text normalisation, fingerprints, shingles, MinHash signatures, LSH bands, similarity."""

from __future__ import annotations

import pytest

from monitor.dedup import (StorySettings, band_values, canonical_url, fingerprint, lsh_bands, minhash_signature,
                           normalise_text, shingles, similarity, url_hash)

STORY = ("Germany will send four more IRIS-T air defence systems to Ukraine this year, the defence minister said "
         "on Thursday after meeting his counterparts in Brussels. The systems are worth about 600 million euros "
         "and will be delivered from industry stocks. Kyiv has asked its partners for more air defence since "
         "Russian strikes on power plants intensified in the spring. ")


def test_normalise_folds_case_accents_punctuation_and_spacing():
    assert normalise_text("  Élysée’s  “Plan”—for\n2024!\t") == "elysee s plan for 2024"
    assert normalise_text("STRASSE") == normalise_text("Straße")
    assert normalise_text("Москва, Ёлка") == "москва елка"
    assert normalise_text("") == ""


def test_fingerprint_ignores_markup_differences_but_not_words():
    assert fingerprint("Hello,   World!") == fingerprint("hello world")
    assert fingerprint("Hello World") != fingerprint("Hello there World")
    assert len(fingerprint("x")) == 32 and int(fingerprint("x"), 16) >= 0


def test_shingles_are_word_windows_of_normalised_text():
    assert shingles("A b, C d E f", k=5) == {b"a b c d e", b"b c d e f"}
    assert shingles("Only three words", k=5) == {b"only three words"}
    assert shingles("  ,;  ") == set()
    assert len(shingles(STORY * 3)) == len(shingles(STORY * 2))  # repeated text adds no new windows


def test_signature_is_stable_and_sized_by_permutations():
    sig = minhash_signature(shingles(STORY), 128)
    assert sig == minhash_signature(shingles(STORY), 128)
    assert len(sig) == 128 * 8
    assert minhash_signature(set(), 128) == ""


def test_similarity_is_high_for_a_truncated_padded_copy_and_low_for_another_text():
    story = shingles(STORY * 1 + "The minister added that training of Ukrainian crews would start in May.")
    copy = shingles("Subscribe to our newsletter today. " + STORY[:250] + " Share this article.")
    other = shingles("The central bank kept interest rates unchanged on Wednesday and signalled that inflation "
                     "would fall back towards its target by the end of next year, citing lower energy prices.")
    a, b, c = (minhash_signature(s, 256) for s in (story, copy, other))
    overlap_copy, jaccard_copy = similarity(a, len(story), b, len(copy))
    overlap_other, _ = similarity(a, len(story), c, len(other))
    exact = len(story & copy) / min(len(story), len(copy))
    assert overlap_copy == pytest.approx(exact, abs=0.15)
    assert overlap_copy > jaccard_copy  # truncation and padding cost Jaccard more than overlap
    assert overlap_other < 0.1
    assert similarity(a, len(story), a, len(story)) == (1.0, 1.0)


def test_similarity_of_incomparable_signatures_is_zero():
    sig = minhash_signature(shingles(STORY), 128)
    assert similarity(sig, 10, minhash_signature(shingles(STORY), 64), 10) == (0.0, 0.0)
    assert similarity("", 0, sig, 10) == (0.0, 0.0)


def test_lsh_bands_fit_the_permutations_and_match_datasketch():
    assert lsh_bands(0.5, 128) == (25, 5)  # datasketch MinHashLSH(threshold=0.5, num_perm=128)
    assert lsh_bands(0.25, 128) == (42, 3)
    bands, rows = lsh_bands(0.25, 128, 0.9)
    assert bands * rows <= 128 and rows == 2  # weighting misses up: more, shorter bands


def test_band_values_split_the_signature_and_name_their_band():
    sig = minhash_signature(shingles(STORY), 128)
    values = band_values(sig, 42, 3)
    assert len(values) == 42 and len(set(values)) == 42
    assert values[1] == "1:" + sig[24:48]
    assert band_values("", 42, 3) == []


def test_story_settings_validate():
    assert StorySettings().threshold == 0.5
    with pytest.raises(ValueError):
        StorySettings(threshold=1.5)
    with pytest.raises(ValueError):
        StorySettings(num_perms=64)


def test_url_helpers_are_unchanged():
    assert canonical_url("../a?utm_source=x&id=3#top", "HTTP://Example.COM:80/news/b") == "http://example.com/a?id=3"
    assert len(url_hash("http://example.com/a")) == 24
