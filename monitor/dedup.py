"""Deduplication: canonical URLs, exact-content fingerprints and near-duplicate story clusters.

The cores are pure functions; StoryIndex computes signatures and leaves storage to monitor/store/stories.py.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import numpy as np

from .minhash import MinHash
from .models import Article
from .settings import DEFAULT_TRACKING_PARAMS, StorySettings
from .store.stories import StoryStore

if TYPE_CHECKING:
    from .store import Keys

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
# Fragments that say where the page scrolls to, not which item: dropped. Every other fragment is kept, because it is
# the item (a post anchored on a day page, 24.html#a010650) or the route of a script-driven site (#!/story/123).
_NAVIGATION_FRAGMENT = re.compile(
    r"top|content|main(?:-?content)?|comments?|comment-form|respond|reply|more(?:-\d+)?|jump|continue(?:-reading)?|"
    r"read-?more|disqus_thread|page|article|story|body|skip(?:-?to-?content)?", re.IGNORECASE)
_FEED_WORDS = {"rss", "feed", "feeds", "atom"}
_WORD_SPLIT = re.compile(r"[\W_]+")


def _glob(pattern: str) -> str:
    """A shell pattern (`*`, `?`) as a regular expression."""
    return re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")


@lru_cache(maxsize=16)
def tracking_rules(patterns: tuple[str, ...] = DEFAULT_TRACKING_PARAMS) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Two regexes for one rule list: names dropped whatever their value, and `name=value` pairs dropped."""
    names = [_glob(p) for p in patterns if "=" not in p]
    pairs = [_glob(p.split("=", 1)[0]) + "=" + _glob(p.split("=", 1)[1]) for p in patterns if "=" in p]
    never = r"(?!)"
    return (re.compile("|".join(names) or never, re.IGNORECASE | re.DOTALL),
            re.compile("|".join(pairs) or never, re.IGNORECASE | re.DOTALL))


def _is_tracking(name: str, value: str, rules: tuple[re.Pattern[str], re.Pattern[str]]) -> bool:
    by_name, by_pair = rules
    return by_name.fullmatch(name) is not None or by_pair.fullmatch(f"{name}={value}") is not None


def item_fragment(fragment: str) -> str:
    """The fragment when it names an item or a route; "" for one that only scrolls or tracks.

    >>> [item_fragment(f) for f in ("a010650", "!/story/123", "xtor=RSS-1", "ref=rss", "top", "more-42", ".VtCA1e")]
    ['a010650', '!/story/123', '', '', '', '', '']
    """
    if fragment.startswith("!"):  # a hashbang route is the page itself, whatever it holds
        return fragment
    if (not fragment or "=" in fragment or "&" in fragment or fragment.startswith(".")  # key=value; share-button ids
            or _NAVIGATION_FRAGMENT.fullmatch(fragment) or _FEED_WORDS & set(_WORD_SPLIT.split(fragment.lower()))):
        return ""
    return fragment


def canonical_url(url: str, base: str | None = None, *, tracking: tuple[str, ...] = DEFAULT_TRACKING_PARAMS) -> str:
    """The URL an entry is known by: absolute, lower-case scheme and host, no default port, no tracking parameters
    (remaining ones in their original order), and a fragment only if it names an item or a route (item_fragment).

    >>> canonical_url("../a?utm_source=x&id=3#top", "HTTP://Example.COM:80/news/b")
    'http://example.com/a?id=3'
    >>> canonical_url("http://scripting.com/2017/06/24.html?ref=rss#a010650")
    'http://scripting.com/2017/06/24.html#a010650'
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
    rules = tracking_rules(tracking)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not _is_tracking(k, v, rules)])
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, query, item_fragment(parts.fragment)))


def url_hash(url: str) -> str:
    """A short stable id for a canonical URL (field names in the seen-URL hashes, article keys)."""
    return hashlib.blake2b(url.encode("utf-8"), digest_size=12).hexdigest()


# --- content: normalised text, exact fingerprints, shingles (pure) ---------------------------------------------------

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _without_marks(run: re.Match[str]) -> str:
    return "".join(ch for ch in run.group() if not unicodedata.combining(ch))


def normalise_text(text: str) -> str:
    """Case-folded, accents folded, every run of punctuation and whitespace one space.

    >>> normalise_text("  Élysée’s  “Plan”—for 2024! ")
    'elysee s plan for 2024'
    """
    decomposed = unicodedata.normalize("NFKD", (text or "").casefold())
    # combining marks are looked for in the runs of non-ASCII characters only (an ASCII one never is one): a test
    # per character of the whole text was most of the story assignment's CPU on the daemon's event loop
    folded = _NON_ASCII.sub(_without_marks, decomposed)
    return _NON_WORD.sub(" ", folded).strip()


def _fingerprint_of(normalised: str) -> str:
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=16).hexdigest()


def _shingles_of(normalised: str, k: int) -> set[bytes]:
    words = normalised.split()
    if len(words) <= k:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i:i + k]).encode("utf-8") for i in range(len(words) - k + 1)}


def fingerprint(text: str) -> str:
    """Exact-content fingerprint: the same words in the same order give the same value, whatever the markup."""
    return _fingerprint_of(normalise_text(text))


def shingles(text: str, k: int = 5) -> set[bytes]:
    """Word k-shingles of the normalised text; a text shorter than k words is one shingle (none if empty)."""
    return _shingles_of(normalise_text(text), k)


# --- near-duplicate story clusters: MinHash LSH in Redis -------------------------------------------------------------

# Similarity between two texts is the estimated share of the shorter one's shingles found in the longer one
# (overlap coefficient), not plain Jaccard: a republished copy is often truncated and padded with the other site's
# boilerplate, which halves its Jaccard while most of what it says is still the story's.
# The LSH bands are therefore tuned for a Jaccard of threshold * LSH_JACCARD_FACTOR (a copy holding 60% of the story
# plus boilerplate, at the overlap threshold, has about that Jaccard), and a missed candidate weighs 9 times a false
# one: a miss is a second alert for the same story, a false candidate costs one signature comparison in Redis.
# That Jaccard is also a floor for joining: without it a short story that is mostly one site's boilerplate
# "contains" every other article padded with the same boilerplate (all 140 corpus pages x 30 copies: 119 false
# joins without the floor, 68 with it, all among texts under 1,500 characters; none above).
LSH_JACCARD_FACTOR = 0.5
LSH_FALSE_NEGATIVE_WEIGHT = 0.9
# Two short texts padded with one site's header and footer are mostly the same words; requiring this many shingles
# in common (about 80 words of the story: a paragraph) keeps such briefs apart: they dedup only exactly.
MIN_COMMON_SHINGLES = 80
MINHASH_SEED = 1  # every instance must hash alike: stored signatures are compared across processes and restarts


@dataclass(frozen=True)
class StoryAssignment:
    """Where an article landed. `similarity` is 1.0 for exact copies, the best candidate's score otherwise."""

    story_id: str
    new_story: bool
    exact_duplicate: bool
    similarity: float
    first_url: str
    fingerprint: str = ""


_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it


@lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int, false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the weighted false positive and negative areas
    around `threshold` (the optimisation of datasketch's MinHashLSH `_optimal_param`)."""
    below = np.linspace(0.0, threshold, 101)
    above = np.linspace(threshold, 1.0, 101)
    best = (math.inf, 1, num_perm)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            false_pos = _trapezoid(1 - (1 - below ** r) ** b, below)
            false_neg = _trapezoid((1 - above ** r) ** b, above)
            error = (1 - false_negative_weight) * false_pos + false_negative_weight * false_neg
            if error < best[0]:
                best = (error, b, r)
    return best[1], best[2]


def minhash_signature(shingle_set: set[bytes], num_perm: int) -> str:
    """Hex of the MinHash values (8 hex digits each); "" for an empty set, which has nothing to compare."""
    if not shingle_set:
        return ""
    mh = MinHash(num_perm=num_perm, seed=MINHASH_SEED)
    mh.update_batch(sorted(shingle_set))
    return mh.hashvalues.astype(">u4").tobytes().hex()


def band_values(signature: str, bands: int, rows: int) -> list[str]:
    """The LSH band strings of a hex signature: band i is rows consecutive hash values."""
    width = rows * 8
    return [f"{i}:{signature[i * width:(i + 1) * width]}" for i in range(bands)] if signature else []


def similarity(signature_a: str, size_a: int, signature_b: str, size_b: int) -> tuple[float, float]:
    """(overlap, jaccard): estimated share of the smaller shingle set found in the larger, and the estimated
    Jaccard index, from two signatures and set sizes. The Lua script computes the same."""
    n = len(signature_a) // 8
    if not n or len(signature_b) != len(signature_a) or not size_a or not size_b:
        return 0.0, 0.0
    same = sum(signature_a[i * 8:i * 8 + 8] == signature_b[i * 8:i * 8 + 8] for i in range(n))
    jaccard = same / n
    common = jaccard * (size_a + size_b) / (1 + jaccard)
    return min(1.0, common / min(size_a, size_b)), jaccard


class StoryIndex:
    """Assigns articles to story clusters kept in Redis (monitor/store/stories.py holds the keys and the script).

    This side computes what the store compares: the exact fingerprint, the shingles' MinHash signature and its LSH
    band values, with the thresholds of `settings`.
    """

    def __init__(self, redis: Any, keys: Keys, *, settings: StorySettings) -> None:
        self.store = StoryStore(redis, keys)
        self.settings = settings
        self.jaccard_floor = round(settings.threshold * LSH_JACCARD_FACTOR, 3)
        self.bands, self.rows = lsh_bands(self.jaccard_floor, settings.num_perm, LSH_FALSE_NEGATIVE_WEIGHT)
        self.ttl = max(1, int(settings.retention_days * 86400))
        self.min_common = MIN_COMMON_SHINGLES

    async def assign(self, article: Article, *, now: float | None = None) -> StoryAssignment:
        """`now` is accepted for callers' sake: the store stamps a story's creation with the wall clock, the clock
        its keys' expiry runs on.

        Put `article` in a story: its exact copy's, else the most similar one's above threshold, else a new one.

        One Lua script decides and claims atomically, so instances racing on copies of one new story agree on it.
        The MinHash runs here in the event loop: about 3 ms for an 800-word article, 85 ms for 200,000 characters.
        """
        content = article.text if article.text.strip() else article.title
        normalised = normalise_text(content)  # once: the fingerprint and the shingles are both of it
        fp = _fingerprint_of(normalised) if normalised else ""
        shingle_set = _shingles_of(normalised, self.settings.shingle_words)
        sig = minhash_signature(shingle_set, self.settings.num_perm)
        got = await self.store.assign(
            story_id=url_hash(article.url)[:16], url=article.url, source=article.source or article.site_name,
            fingerprint=fp, bands=band_values(sig, self.bands, self.rows), signature=bytes.fromhex(sig),
            size=len(shingle_set), threshold=self.settings.threshold, ttl=self.ttl,
            jaccard_floor=self.jaccard_floor, min_common=self.min_common)
        assignment = StoryAssignment(story_id=got.story_id, new_story=got.outcome == "new",
                                     exact_duplicate=got.outcome == "exact", similarity=got.similarity,
                                     first_url=got.first_url, fingerprint=fp)
        log.debug("story %s for %s (%s, similarity %.2f)", got.story_id, article.url, got.outcome, got.similarity)
        return assignment

    async def members(self, story_id: str) -> list[tuple[str, str]]:
        """(source, url) of every copy of the story, in arrival order; [] for an unknown or expired story."""
        return await self.store.members(story_id)
