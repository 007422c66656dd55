"""What the match stage stores of one article, in one round trip: its archive entry (archive.py), the rules that
fired on it (matched.py) and, when some did, its story's copies read back for the alerts (stories.py).

The three repositories keep their own keys and formats; this only queues their commands on one pipeline. No MULTI:
the keys span Cluster slots, each write is idempotent, and a failed command fails the call (the stage is retried,
as when each repository was called in turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import Article
from .archive import ArticleArchive
from .matched import MatchedRules
from .stories import StoryStore


class MatchedArticles:
    def __init__(self, redis: Any, *, archive: ArticleArchive, matched: MatchedRules, stories: StoryStore) -> None:
        self.redis = redis
        self.archive = archive
        self.matched = matched
        self.stories = stories

    async def record(self, article: Article, rule_ids: Sequence[str], *, now: float, ttl: float,
                     story_id: str) -> list[tuple[str, str]]:
        """Archive `article` at `now`, record `rule_ids` for replay (kept `ttl` seconds); with rules, return the
        (source, url) of every copy of `story_id` (else [], nothing read)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.archive.queue_put(pipe, article, now=now)
            self.matched.queue_record(pipe, article.url, rule_ids, ttl=ttl)
            if rule_ids:
                self.stories.queue_members(pipe, story_id)
            results = await pipe.execute()
        return await self.stories.members_from(results[-1], story_id) if rule_ids else []
