"""monitor: a news-monitoring daemon.

Polls feeds, extracts articles, deduplicates in Redis, matches analysts' rules and sends alerts once per story.
"""

__version__ = "0.1.0"
