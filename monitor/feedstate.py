"""Per-feed scheduling state and seen URLs: the repository is monitor/store/feeds.py (this name is kept for callers)."""

from .store.feeds import (FIRST_POLL_SPREAD, LAST_ERROR_MAX, REBUILD_TIMEOUT, REBUILDING, SEEN_SHARDS, FeedState,
                          FeedStore, StateLost)

__all__ = ["FIRST_POLL_SPREAD", "LAST_ERROR_MAX", "REBUILD_TIMEOUT", "REBUILDING", "SEEN_SHARDS", "FeedState",
           "FeedStore", "StateLost"]
