"""The storage boundary: only this package (and streams.py, for Redis Streams) speaks Redis.

    redis.py      the connection: a configured URL or an embedded redis-server; a client whose errors are mapped
    errors.py     redis-py's exceptions -> StoreUnavailable / StoreFull / StoreDataError (monitor/errors.py)
    keys.py       every key name
    scripts.py    the Lua scripts in scripts/*.lua (claim_lease, host_slots, assign_story, the alerts') and LeaseClaim
    feeds.py, hosts.py, stories.py, archive.py, sources.py, matched.py, ops.py, alerts.py: one repository per
                  aggregate; articles.py: the match stage's writes of three of them in one round trip
"""

from ..errors import StoreDataError, StoreError, StoreFull, StoreUnavailable
from .errors import is_unavailable, map_error
from .keys import AlertKeys, Keys
from .redis import (EmbeddedRedis, connect, is_cluster_url, open_redis, redact_redis_url, redis_server_binary,
                    wait_ready)
from .scripts import LeaseClaim

__all__ = ["AlertKeys", "EmbeddedRedis", "Keys", "LeaseClaim", "StoreDataError", "StoreError", "StoreFull",
           "StoreUnavailable", "connect", "is_cluster_url", "is_unavailable", "map_error", "open_redis",
           "redact_redis_url", "redis_server_binary", "wait_ready"]
