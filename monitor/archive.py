"""The article archive: its settings are monitor.settings.ArchiveSettings; the archive itself (ArticleArchive) is the
repository monitor/store/archive.py."""

from __future__ import annotations

from .settings import ArchiveSettings
from .store.archive import ArticleArchive, CorruptArchiveEntry, decode_article, encode_article

__all__ = ["ArchiveSettings", "ArticleArchive", "CorruptArchiveEntry", "decode_article", "encode_article"]
