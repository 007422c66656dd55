"""The match stage's writes in one round trip (store/articles.py): what the archive, the matched-rules record and
the story's copies give afterwards is what calling each repository in turn gave."""

from __future__ import annotations

import time

from monitor.archive import ArticleArchive
from monitor.dedup import StoryIndex
from monitor.models import Article
from monitor.settings import ArchiveSettings, StorySettings
from monitor.store import Keys
from monitor.store.articles import MatchedArticles
from monitor.store.matched import MatchedRules


async def test_one_round_trip_stores_what_the_repositories_stored(redis, keys: Keys):
    stories = StoryIndex(redis, keys, settings=StorySettings())
    archive = ArticleArchive(redis, keys, settings=ArchiveSettings())
    matched = MatchedRules(redis, keys)
    stage = MatchedArticles(redis, archive=archive, matched=matched, stories=stories.store)
    article = Article(url="https://x.example/a", source="X", title="Tanks", text="Leopard tanks for Ukraine. " * 40)
    story = await stories.assign(article)
    now = time.time()

    copies = await stage.record(article, ["b", "a"], now=now, ttl=3600, story_id=story.story_id)
    assert copies == await stories.members(story.story_id) == [("X", article.url)]
    assert await matched.get(article.url) == {"a", "b"}
    assert (await archive.get(article.url)).text == article.text
    assert [a.url async for a in archive.since(now - 1)] == [article.url]

    assert await stage.record(article, [], now=now, ttl=3600, story_id=story.story_id) == []  # nothing fired now
    assert await matched.get(article.url) == set() and not await redis.exists(matched.key(article.url))
    assert await stage.record(article, ["a"], now=now, ttl=3600, story_id="0123456789abcdef") == []  # no such story
