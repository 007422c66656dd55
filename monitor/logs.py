"""Logging set-up: readable text by default, JSON lines for journald and log shippers; credentials masked.

Every record passes a filter that masks the password part of URLs (scheme://user:secret@host) as a last line of
defence; code logs apprise URLs only in their privacy form in the first place. Secrets known exactly (the pieces of
channel URLs, see `add_secrets`) are masked in every record at its creation, whoever logs it (apprise, urllib3) and
whichever handler takes it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Iterable

from .redact import mask_text

_known: list[str] = []  # exact secret strings, longest first
_known_lock = threading.Lock()
_base_factory = logging.getLogRecordFactory()


def mask_secrets(text: str) -> str:
    text = mask_text(text)
    for secret in _known:
        if secret in text:
            text = text.replace(secret, "****")
    return text


def add_secrets(secrets: Iterable[str]) -> None:
    """Mask these exact strings in every log record from now on (any logger, any level, any handler)."""
    global _known
    with _known_lock:
        _known = sorted(set(_known) | {s for s in secrets if s}, key=len, reverse=True)
    if logging.getLogRecordFactory() is not _masked_record:
        logging.setLogRecordFactory(_masked_record)


def _masked_record(*args: object, **kwargs: object) -> logging.LogRecord:
    """Records are created only once a logger accepted the level: masking costs nothing for what is not logged."""
    record = _base_factory(*args, **kwargs)
    if not _known:
        return record
    message = record.getMessage()
    masked = mask_secrets(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
    return record


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        problems = getattr(record, "problems", None)
        if problems:
            data["problems"] = [mask_secrets(p) for p in problems]
        if record.exc_info:
            data["exc"] = mask_secrets(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def error_line(message: str, problems: list[str] | None = None, *, fmt: str = "text") -> str:
    """An expected error as the CLI prints it: `error: ...` (one line per problem), or one JSON log object."""
    message = mask_secrets(message)
    problems = [mask_secrets(p) for p in problems or []]
    if fmt == "json":
        record = logging.LogRecord("monitor", logging.ERROR, "", 0, message, None, None)
        record.problems = problems
        return JsonFormatter().format(record)
    return "\n".join([f"error: {message}", *(f"  {p}" for p in problems)])


def setup(*, level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("trafilatura", "htmldate", "courlan", "apscheduler.executors.default", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
