"""feed_article / has_full_text: which of an entry's texts becomes the article, and when the page is skipped."""

from __future__ import annotations

from monitor.feedtext import feed_article, has_full_text
from monitor.models import Entry

TEXT = ("The United States has called on its allies to dig deep and provide more weapons and ammunition to Ukraine "
        "as Kiev faces a tough fight in its counteroffensive against Russian forces. ") * 2


def entry(**kw) -> Entry:
    return Entry(feed_id="wire", url="http://example.org/a", title="  US urges allies  to dig deep ", **kw)


def test_the_content_is_full_text_from_min_chars_on_and_a_long_summary_never_is():
    assert has_full_text(entry(content=TEXT), min_chars=200)
    assert not has_full_text(entry(content=TEXT[:199]), min_chars=200)
    assert not has_full_text(entry(summary=TEXT * 3), min_chars=200)  # a teaser is not the article


def test_content_wins_over_a_shorter_summary_and_a_longer_summary_over_short_content():
    article = feed_article(entry(content=TEXT, summary="Teaser."), max_chars=10_000)
    assert (article.text, article.text_from, article.title) == (TEXT.strip(), "feed content", "US urges allies to dig deep")
    assert article.language == "en" and article.feed_id == "wire"
    assert feed_article(entry(content="Short.", summary=TEXT), max_chars=10_000).text_from == "feed summary"


def test_a_headline_alone_is_an_article_without_text_and_long_text_is_cut():
    article = feed_article(entry(), max_chars=10_000)
    assert (article.text, article.text_from) == ("", "feed title")
    cut = feed_article(entry(content=TEXT * 20), max_chars=1000)
    assert len(cut.text) <= 1000
