"""Directory sources: local files (e.g. seeds/*.txt) as entries, and reading them back as pages, confined to a root.

A directory feed is Feed(kind="directory", url="file:///abs/dir"); each matching file is one Entry (its file URI).
"""

from __future__ import annotations

import logging
import mimetypes
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import BlockedURL, PermanentError
from ..models import Entry, Feed, Page

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = ("*.txt", "*.md", "*.html", "*.htm")
TEXT_TYPES = {".txt": "text/plain", ".md": "text/markdown", ".html": "text/html", ".htm": "text/html"}


def path_from_file_url(url: str) -> Path:
    """The absolute path of a file:// URL (host empty or localhost); PermanentError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise BlockedURL(f"{url}: not a local file:// URL")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise PermanentError(f"{url}: file URL path must be absolute")
    return path


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def scan_directory(feed: Feed, *, patterns: tuple[str, ...] = DEFAULT_PATTERNS) -> list[Entry]:
    """One Entry per matching file under the feed's directory (recursive, sorted, hidden files skipped).

    Files whose real path leaves the directory (symlinks out) are refused and logged; so are unreadable files.
    """
    root = path_from_file_url(feed.url)
    try:
        real_root = root.resolve(strict=True)
    except OSError as exc:
        raise PermanentError(f"directory source {feed.id}: {root}: {exc.strerror or exc}") from exc
    if not real_root.is_dir():
        raise PermanentError(f"directory source {feed.id}: {root} is not a directory")
    if not os.access(real_root, os.R_OK | os.X_OK):
        raise PermanentError(f"directory source {feed.id}: {root} is not readable")
    files: set[Path] = set()
    for pattern in patterns:
        files.update(p for p in root.rglob(pattern) if not any(part.startswith(".") for part in
                                                                   p.relative_to(root).parts))
    entries = []
    for path in sorted(files):
        entry = _entry_for(feed, root, real_root, path)
        if entry is not None:
            entries.append(entry)
    return entries


def _entry_for(feed: Feed, root: Path, real_root: Path, path: Path) -> Entry | None:
    try:
        real = path.resolve(strict=True)
        real.stat()  # it exists and can be read
    except OSError as exc:
        log.warning("directory source %s: skipping %s: %s", feed.id, path, exc.strerror or exc)
        return None
    if not _inside(real, real_root):
        log.warning("directory source %s: skipping %s: it points outside %s", feed.id, path, root)
        return None
    if not real.is_file() or not os.access(real, os.R_OK):
        log.warning("directory source %s: skipping %s: not a readable file", feed.id, path)
        return None
    # No publication date: a file's mtime says when it was copied, and the rules' @date would judge the text's
    # "on Thursday" against that day. A "Date:" line in the file (or HTML metadata) gives the date at extraction.
    uri = path.absolute().as_uri()
    return Entry(feed_id=feed.id, url=uri, link=uri, entry_id=path.relative_to(root).as_posix(),
                 title=path.stem.replace("_", " ").replace("-", " "), published=None,
                 source=feed.name or root.name)


def read_local(url: str, *, roots: Sequence[Path], max_bytes: int) -> Page:
    """The bytes of a file:// URL that lies (after resolving symlinks) inside one of `roots`."""
    path = path_from_file_url(url)
    try:
        real = path.resolve(strict=True)
    except OSError as exc:
        raise PermanentError(f"{path}: {exc.strerror or exc}") from exc
    if not any(_inside(real, Path(r).resolve()) for r in roots):
        raise BlockedURL(f"{path}: outside the allowed directories")
    if not real.is_file():
        raise PermanentError(f"{path}: not a regular file")
    try:
        with real.open("rb") as handle:
            body = handle.read(max_bytes + 1)
    except OSError as exc:
        raise PermanentError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(body) > max_bytes:
        raise PermanentError(f"{path}: larger than the cap of {max_bytes} bytes")
    content_type = TEXT_TYPES.get(real.suffix.lower()) or mimetypes.guess_type(real.name)[0] or ""
    return Page(url=url, final_url=url, status=200, body=body, content_type=content_type)
