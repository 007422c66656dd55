"""Backtesting: run the current rules over the archived articles and compare with what fired when they arrived.

The pipeline records, per archived article, the rule ids that matched then; replay lists what would fire now, what
would newly fire, and what would no longer fire.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .archive import ArticleArchive
from .config import Config
from .rules import RuleSet, load_rules
from .store import Keys
from .store.matched import MatchedRules


def matched_key(keys: Keys, url: str) -> str:
    """The key of `url`'s record (store/matched.py)."""
    return MatchedRules(None, keys).key(url)


async def record_matched(redis: Any, keys: Keys, url: str, rule_ids: list[str], *, ttl: float) -> None:
    """The rules that fired on the article now; nothing is kept when none did (most articles: replay reads a
    missing record as "none"), and an earlier record of the same URL is then removed."""
    await MatchedRules(redis, keys).record(url, rule_ids, ttl=ttl)


async def replay(client: Any, keys: Keys, config: Config, *, since: float, rule_id: str | None = None,
                 ruleset: RuleSet | None = None) -> str:
    """`ruleset`: rules to try (a draft folder); by default the live ones of the configuration."""
    ruleset = ruleset or load_rules(config.rules.path)
    archive = ArticleArchive(client, keys, settings=config.archive)
    matched = MatchedRules(client, keys)
    lines: list[str] = []
    totals: Counter[str] = Counter()
    async for article in archive.since(time.time() - since):
        totals["articles"] += 1
        now = {m.rule_id for m in ruleset.match(article)}
        before = await matched.get(article.url)
        if rule_id:
            now, before = now & {rule_id}, before & {rule_id}
        for rid in sorted(now | before):
            verdict = "fires" if rid in now and rid in before else "NEW" if rid in now else "NO LONGER"
            totals[verdict] += 1
            lines.append(f"{verdict:<9}  {rid:<28}  {article.title[:70]}  <{article.url}>")
    head = (f"replayed {totals['articles']} articles against rules version {ruleset.version}: "
            f"{totals['fires']} still fire, {totals['NEW']} would newly fire, {totals['NO LONGER']} would no longer fire")
    return "\n".join([head, *lines])
