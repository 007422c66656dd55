"""monitor.minhash gives the signatures datasketch's MinHash gives (stored story signatures stay comparable), and
importing the daemon's modules no longer loads scipy."""

from __future__ import annotations

import random
import subprocess
import sys

import datasketch
import numpy as np
import pytest

from monitor.dedup import MINHASH_SEED, minhash_signature, shingles
from monitor.minhash import MinHash
from monitor.settings import StorySettings


def _datasketch(values: list[bytes], num_perm: int, seed: int) -> np.ndarray:
    mh = datasketch.MinHash(num_perm=num_perm, seed=seed)
    mh.update_batch(values)
    return mh.hashvalues


@pytest.mark.parametrize("num_perm,seed", [(StorySettings().num_perm, MINHASH_SEED), (128, 1), (64, 7), (1, 3)])
def test_signatures_equal_datasketchs_bit_for_bit(num_perm, seed):
    rng = random.Random(num_perm * 31 + seed)
    for size in (1, 2, 17, 500, 3000):
        values = [rng.randbytes(rng.randint(0, 40)) for _ in range(size)]
        mine = MinHash(num_perm=num_perm, seed=seed)
        mine.update_batch(values)
        assert mine.hashvalues.dtype == np.uint32
        assert np.array_equal(mine.hashvalues, _datasketch(values, num_perm, seed)), (num_perm, seed, size)


def test_updates_in_parts_equal_one_batch_and_an_empty_batch_changes_nothing():
    values = [f"shingle {i}".encode() for i in range(200)]
    parts = MinHash(num_perm=32)
    parts.update_batch(values[:50])
    parts.update_batch([])
    for value in values[50:]:
        parts.update(value)
    assert np.array_equal(parts.hashvalues, _datasketch(values, 32, 1))
    assert np.all(MinHash(num_perm=4).hashvalues == 0xFFFFFFFF)


def test_story_signature_of_a_text_is_datasketchs():
    text = " ".join(f"word{i % 97} token{i % 13}" for i in range(400))
    shingle_set = shingles(text)
    expected = _datasketch(sorted(shingle_set), StorySettings().num_perm, MINHASH_SEED)
    assert minhash_signature(shingle_set, StorySettings().num_perm) == expected.astype(">u4").tobytes().hex()


def test_the_daemon_modules_import_without_scipy():
    code = "import sys, monitor.daemon, monitor.cli, monitor.dedup; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'monitor'" in out and "'numpy'" in out
    assert "scipy" not in out and "datasketch" not in out
