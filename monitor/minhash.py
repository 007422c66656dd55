"""MinHash signatures of shingle sets, bit for bit as datasketch 2's `MinHash` (default scheme "affine32") makes them.

Here rather than `from datasketch import MinHash`: importing datasketch imports its LSH classes, and with them
scipy.integrate (41 MB in every process, 0.2-0.4 s at start) for a parameter optimisation dedup does itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

_MAX = np.uint32(0xFFFFFFFF)  # an empty signature's value, as datasketch's


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 parameters: odd `a`, any `b`, drawn in this order from RandomState(seed)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def _fmix32(hv: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, the bijection datasketch mixes each input hash with first."""
    hv = hv ^ (hv >> np.uint32(16))
    hv = hv * np.uint32(0x85EBCA6B)
    hv = hv ^ (hv >> np.uint32(13))
    hv = hv * np.uint32(0xC2B2AE35)
    return hv ^ (hv >> np.uint32(16))


class MinHash:
    """`MinHash(num_perm=128, seed=1)`, `update_batch(values)`, `hashvalues` (uint32): datasketch's interface, the
    part dedup uses. A value is hashed by the first 4 bytes of its SHA-1, little-endian (datasketch's sha1_hash32)."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        if num_perm < 1:
            raise ValueError("num_perm must be positive")
        self.num_perm, self.seed = num_perm, seed
        self.hashvalues = np.full(num_perm, _MAX, dtype=np.uint32)

    def update_batch(self, values: Iterable[bytes]) -> None:
        digests = b"".join(hashlib.sha1(v).digest()[:4] for v in values)
        if not digests:
            return
        hv = _fmix32(np.frombuffer(digests, dtype="<u4").astype(np.uint32)).reshape(-1, 1)
        a, b = _permutations(self.num_perm, self.seed)
        with np.errstate(over="ignore"):  # uint32 arithmetic wraps: that is the modulo 2**32 of the scheme
            phv = hv * a + b
        self.hashvalues = np.minimum(self.hashvalues, phv.min(axis=0))

    def update(self, value: bytes) -> None:
        self.update_batch((value,))
