"""Secrets out of what we show: the one pattern of secret-looking parameter names and every redactor built on it.

A leaf module (stdlib only). Used for feed and page URLs in errors, logs and Redis (`redact_url`), the Redis URL in
start-up errors (`redact_redis_url`), every log record (`mask_text`, see monitor.logs) and apprise URLs in alert
history and logs (`privacy_url`, `secret_parts`). What each masks is at least what the five patterns it replaces
masked (tests/unit/test_redact.py).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

# A parameter whose name contains one of these is a secret: api_key, X-Api-Token, password, passwd, auth,
# Authorization, sig, signature, client_secret, credential ...
SECRET_NAME = re.compile(r"key|token|secret|pass|auth|sig|cred", re.IGNORECASE)
MASK = "****"
URL_MASK = "***"  # what redact_url writes (feed URLs in `monitor feeds` and stored errors have always shown ***)

# name=value in a query string, or in free text that contains one: the value up to the next & or white space
_QUERY_SECRET = re.compile(rf"(?P<key>[?&][^=&#\s]*(?:{SECRET_NAME.pattern})[^=&#\s]*=)[^&\s]*", re.IGNORECASE)
# scheme://user:password@ in free text (the user is kept)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^\s/:@]*):(?P<secret>[^\s/@]+)@")
# apprise URL arguments whose values may be secrets: +Header=, -GETparam=, :payload_field= and secret-looking names
# (a raw + in a query string reads as a space: apprise's +Header= arrives as " Header")
_APPRISE_PASSTHROUGH = re.compile(r"^[+\-: ]")
_TOKEN_SPLIT = re.compile(r"[/:@?&=#,+;]")


def is_secret_name(name: str) -> bool:
    """Whether a parameter (query, header, payload field) of this name holds a secret."""
    return bool(SECRET_NAME.search(name))


def is_secret_apprise_arg(name: str) -> bool:
    """Whether an apprise URL argument may hold a secret: a secret-looking name, or one apprise passes on as it is
    (+Header=, -GETparam=, :payload_field=)."""
    return bool(_APPRISE_PASSTHROUGH.match(name)) or is_secret_name(name)


def mask_query(text: str, mask: str = MASK) -> str:
    """Values of secret-looking parameters (`?api_key=...`, `&token=...`) anywhere in `text` replaced by `mask`."""
    return _QUERY_SECRET.sub(lambda m: m["key"] + mask, text)


def mask_text(text: str) -> str:
    """Free text (a log message) with URL passwords (scheme://user:****@) and secret parameter values masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return mask_query(text)


def redact_url(url: str) -> str:
    """The URL with any password and secret-looking query values replaced by ***, for messages, logs and Redis."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = parts._replace(netloc=f"{parts.username}:{URL_MASK}@{host}")
    return mask_query(parts.geturl(), URL_MASK)


def redact_redis_url(url: str) -> str:
    """A Redis URL without its password (everything before the last @ but the user; a password may hold / or @)
    and without secret query values (?password=...), for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        userinfo, _, rest = tail.rpartition("@")
        user = userinfo.split(":", 1)[0]
        url = f"{head}{sep}{user}:{MASK}@{rest}" if user else f"{head}{sep}{MASK}@{rest}"
    return mask_query(url)


def privacy_url(privacy: str) -> str:
    """apprise's privacy form with every argument value that may be a secret masked: apprise keeps the values of
    custom headers (+X-Api-Token=...), GET parameters and payload fields as they are."""
    parts = urlsplit(privacy)
    if not parts.query:
        return privacy
    args = [(k, MASK if is_secret_apprise_arg(k) and v else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(args, safe="*/@")))


def secret_parts(url: str, privacy: str) -> list[str]:
    """Pieces of the apprise URL `url` that its privacy form hides: masked in every text we log or store, and in
    every log record (monitor.logs.add_secrets).

    Candidates are the tokens before the query (user, password, path tokens), the values of secret-looking
    arguments, and the Basic auth header value apprise sends (base64 of user:password)."""
    parts = urlsplit(url)
    head = url.split("?", 1)[0]
    tokens = {t for t in _TOKEN_SPLIT.split(head) if len(t) >= 4}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if is_secret_apprise_arg(key):
            tokens |= {value} | {t for t in _TOKEN_SPLIT.split(value) if len(t) >= 4}
    tokens |= {unquote(t) for t in tokens}
    if parts.password:
        basic = f"{unquote(parts.username or '')}:{unquote(parts.password)}".encode()
        tokens.add(base64.b64encode(basic).decode())
    privacy = unquote(privacy)
    return sorted((t for t in tokens if len(t) >= 4 and t not in privacy), key=len, reverse=True)
