"""The article a feed itself carries: an entry's full text (content:encoded, Atom content, JSON Feed content), else
its summary, else its headline alone. Used instead of the page when the source says so (`fetch_page`), and when the
page cannot be had.
"""

from __future__ import annotations

from .extract import cut_text
from .language import detect_language
from .models import TEXT_FROM_CONTENT, TEXT_FROM_SUMMARY, TEXT_FROM_TITLE, Article, Entry

FETCH_PAGE_CHOICES = ("auto", "always", "never")


def has_full_text(entry: Entry, *, min_chars: int) -> bool:
    """Whether the entry carries the article itself: at least `min_chars` of feed content (the summary never
    counts: a teaser is not the article)."""
    return len(entry.content.strip()) >= min_chars


def feed_article(entry: Entry, *, max_chars: int) -> Article:
    """The entry as an Article: its content, else its summary (the longer when both), else its title only."""
    content, summary = entry.content.strip(), entry.summary.strip()
    if content and len(content) >= len(summary):
        text, text_from = content, TEXT_FROM_CONTENT
    elif summary:
        text, text_from = summary, TEXT_FROM_SUMMARY
    else:
        text, text_from = "", TEXT_FROM_TITLE
    if len(text) > max_chars:
        text = cut_text(text, max_chars)
    title = " ".join(entry.title.split())
    return Article(url=entry.url, feed_id=entry.feed_id, title=title, text=text, published=entry.published,
                   language=detect_language(text or title), source=entry.source, text_from=text_from)
