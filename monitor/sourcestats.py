"""Per-source article statistics: the repository is monitor/store/sources.py (this name is kept for callers)."""

from .store.sources import LAST_ERROR_MAX, ArticleStats, SourceStats

__all__ = ["LAST_ERROR_MAX", "ArticleStats", "SourceStats"]
