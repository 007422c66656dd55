"""The article archive's settings; the archive itself (ArticleArchive) is the repository monitor/store/archive.py."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .store.archive import ArticleArchive, CorruptArchiveEntry, decode_article, encode_article

__all__ = ["ArchiveSettings", "ArticleArchive", "CorruptArchiveEntry", "decode_article", "encode_article"]


class ArchiveSettings(BaseModel):
    """Config key "archive"."""

    model_config = ConfigDict(extra="forbid")

    retention_days: float = Field(30, gt=0)
    max_text_chars: int = Field(200_000, ge=1000)  # longer texts are cut: the archive is for rules, not reading
