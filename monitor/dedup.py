"""Deduplication: canonical URLs, exact-content fingerprints and near-duplicate story clusters.

The cores are pure functions; the Redis-backed parts take a client and a `Keys` and touch only their own keys.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Query parameters that say how a reader arrived, not what they read.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid",
    "_ga", "_gl", "ref_src", "ref_url", "cmpid", "ocid", "smid", "sr_share", "ns_mchannel", "ns_source",
    "ns_campaign", "ns_linkname", "ns_fee", "at_medium", "at_campaign", "at_custom1", "wt_mc", "wt.mc_id",
    "mkt_tok", "trk", "spm", "share", "rss", "feed",
})
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hmb_", "__twitter")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str, base: str | None = None) -> str:
    """The URL an entry is known by: absolute, lower-case scheme and host, no default port, no fragment,
    no tracking parameters, remaining query parameters in their original order.

    >>> canonical_url("../a?utm_source=x&id=3#top", "HTTP://Example.COM:80/news/b")
    'http://example.com/a?id=3'
    """
    url = (url or "").strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return urlunsplit(parts._replace(fragment=""))
    host = (parts.hostname or "").rstrip(".")
    netloc = host
    if ":" in host:  # IPv6 literal
        netloc = f"[{host}]"
    if parts.port and parts.port != DEFAULT_PORTS.get(scheme):
        netloc += f":{parts.port}"
    if parts.username:
        netloc = parts.username + (f":{parts.password}" if parts.password else "") + "@" + netloc
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)])
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, query, ""))


def url_hash(url: str) -> str:
    """A short stable id for a canonical URL (field names in the seen-URL hashes, article keys)."""
    return hashlib.blake2b(url.encode("utf-8"), digest_size=12).hexdigest()
