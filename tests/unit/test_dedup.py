"""Pure parts of dedup: canonical URLs (tracking parameters, fragments), text normalisation, fingerprints, shingles,
MinHash signatures, LSH bands, similarity."""

from __future__ import annotations

import pytest

from monitor.dedup import (DEFAULT_TRACKING_PARAMS, band_values, canonical_url, fingerprint, lsh_bands, minhash_signature,
                           normalise_text, shingles, similarity, url_hash)
from monitor.settings import StorySettings

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


@pytest.mark.parametrize("url, canonical", [
    # what the corpus feeds append (issue 12): AT Internet, NYT, Guardian, Macworld, Medium, Spiegel, FAZ, ...
    ("https://www.lemonde.fr/a.html?xtor=RSS-3208", "https://www.lemonde.fr/a.html"),
    ("https://www.nytimes.com/2017/a.html?partner=rss&emc=rss", "https://www.nytimes.com/2017/a.html"),
    ("https://www.theguardian.com/a?CMP=share_btn_url", "https://www.theguardian.com/a"),
    ("https://www.macworld.com/a.html?mwrsm=Email&id=7", "https://www.macworld.com/a.html?id=7"),
    ("https://medium.com/p/abc?source=rss----d12c403d4976--food", "https://medium.com/p/abc"),
    ("https://www.faz.net/a.html?ref=FexRss", "https://www.faz.net/a.html"),
    ("https://example.org/a?ref=rss&src=rss", "https://example.org/a"),
    ("https://example.org/a?src=feedly&source=feed", "https://example.org/a"),
    # `ref`, `src`, `source`, `partner` with another value name something: kept
    ("https://example.org/a?ref=home&src=archive&source=reuters&partner=ap",
     "https://example.org/a?ref=home&src=archive&source=reuters&partner=ap"),
])
def test_tracking_parameters_of_the_corpus_feeds_are_dropped(url, canonical):
    assert canonical_url(url) == canonical


def test_tracking_rules_are_configurable_and_defaults_extend():
    settings = StorySettings(tracking_params=["defaults", "from=newsletter*", "x_*"])
    url = "https://example.org/a?from=newsletter-12&x_y=1&utm_source=z&from=home"
    assert canonical_url(url, tracking=settings.tracking_params) == "https://example.org/a?from=home"
    only_own = StorySettings(tracking_params=["x_*"]).tracking_params
    assert canonical_url(url, tracking=only_own) == "https://example.org/a?from=newsletter-12&utm_source=z&from=home"
    assert StorySettings().tracking_params == DEFAULT_TRACKING_PARAMS
    for bad in ("", "=rss", " ref"):
        with pytest.raises(ValueError, match="a rule is NAME or NAME=VALUE"):
            StorySettings(tracking_params=[bad])


@pytest.mark.parametrize("url, canonical", [
    ("http://scripting.com/2017/06/24.html#a010650", "http://scripting.com/2017/06/24.html#a010650"),
    ("http://app.example.org/#!/story/123?ref=rss", "http://app.example.org/#!/story/123?ref=rss"),
    ("http://example.org/a#xtor=RSS-1481423633", "http://example.org/a"),
    ("http://example.org/a#ref=rss", "http://example.org/a"),
    ("http://example.org/a#tk.rss_all", "http://example.org/a"),
    ("http://example.org/a#.VtCA1eS6FaQ", "http://example.org/a"),
    ("http://example.org/a#:~:text=quoted", "http://example.org/a"),
    ("http://example.org/a#more-1234", "http://example.org/a"),
    ("http://example.org/a#comments", "http://example.org/a"),
])
def test_fragments_naming_an_item_or_a_route_are_kept_others_dropped(url, canonical):
    assert canonical_url(url) == canonical
    assert canonical_url(canonical) == canonical  # idempotent: the archive canonicalises article URLs again
