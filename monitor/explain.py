"""Turn what an analyst points `monitor rules explain` at (a file, a URL, standard input) into an Article.

The same extraction as the daemon's, run in this process: one article, no deadline needed beyond the fetch's.
"""

from __future__ import annotations

import mimetypes
import sys
from pathlib import Path

from .config import Config
from .errors import PermanentError
from .extract import extract_article
from .models import Article
from .net import Fetcher


async def load_article(source: str, config: Config) -> Article:
    if source == "-":
        body, url, ctype, encoding = sys.stdin.buffer.read(), "stdin:", "text/plain", None
    elif source.startswith(("http://", "https://")):
        fetcher = Fetcher(config.fetch)
        try:
            page = await fetcher.get(source)
        finally:
            await fetcher.close()
        body, url, ctype, encoding = page.body, page.final_url, page.content_type, page.encoding
    else:
        path = Path(source)
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise PermanentError(f"{source}: cannot read: {exc.strerror or exc}") from None
        url, encoding = path.resolve().as_uri(), None
        ctype = mimetypes.guess_type(path.name)[0] or "text/plain"
    return extract_article(body, url=url, content_type=ctype, encoding=encoding, min_chars=1)
