"""The language of a text (py3langid), which picks the rules' cue lists and the segmenter's conventions.

Light on purpose: the rule tools use it without importing the extraction stack.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from .cache import cache_dir

log = logging.getLogger(__name__)

LANGUAGE_SAMPLE = 1500  # characters: every extracted corpus text gets the same language from 1,000 as from 5,000
# The first look is at fewer characters (py3langid's cost is linear in them: 0.46 ms against 1.05 ms); only a guess
# less sure than LANGUAGE_SURE looks again at LANGUAGE_SAMPLE. On the 140 corpus texts and the 160 labelled
# pledge-dev texts this gives the language the 1,500 characters give, every time (a 500-character sample alone
# does not: 2 of the pledge-dev texts lose theirs). Measured by `python -m bench.language_sample`.
LANGUAGE_FIRST_SAMPLE = 500
LANGUAGE_SURE = 0.99
LANGUAGE_MIN_CONFIDENCE = 0.5


def load_model() -> None:
    """Load the model now. The daemon does so before its workers fork, so they share it (one copy, not one each)."""
    _identifier()


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    tables = _mapped_tables(Path(MODEL_DIR) / MODEL_FILE, cache_dir())
    if tables is None:
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ptc, pc, classes, nextmove, row, output = tables
    return LanguageIdentifier(ptc, pc, classes, nextmove, output, norm_probs=True, tk_row=row)


# py3langid keeps its model (~75 MB: the n-gram automaton's rows, 39 MB, and the per-language feature weights, 28 MB)
# xz-compressed and unpacks it into the heap of every process that loads it. Unpacked once into the cache and mapped
# read-only instead, the tables are file pages: only those a text touches are resident, they are shared by every
# process that maps them (the daemon, its workers, a second instance on the host) and the kernel can drop them under
# memory pressure instead of swapping them. The classifier is py3langid's own, given the mapped tables.
_TABLES = ("ptc", "pc", "classes", "nextmove", "row", "output")


def _mapped_tables(model_file: Path, folder: Path | None) -> tuple[Any, ...] | None:
    """The model's tables mapped from `folder` (unpacked there first if missing or unreadable); None when there is no
    cache folder or it cannot be written: the model is then loaded into memory, as py3langid does."""
    if folder is None:
        return None
    try:
        key = hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    except OSError:
        return None
    target = folder / f"langid-{_py3langid_version()}-{key}"
    try:
        return _open_tables(target)
    except (OSError, ValueError):
        pass
    try:
        _unpack(target)
        return _open_tables(target)
    except (OSError, ValueError) as exc:
        log.info("language model: not cached in %s (%s); loaded into memory", folder, exc)
        return None


def _open_tables(folder: Path) -> tuple[Any, ...]:
    """ValueError when a table is missing, truncated or does not fit the others."""
    import numpy as np

    t = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _TABLES}
    for table in t.values():
        madvise = getattr(getattr(table, "_mmap", None), "madvise", None)
        if madvise is not None and hasattr(mmap, "MADV_RANDOM"):
            madvise(mmap.MADV_RANDOM)
    rows = t["nextmove"].size // 256
    if (t["ptc"].ndim != 2 or not t["ptc"].shape[1] == len(t["pc"]) == len(t["classes"]) or t["nextmove"].size % 256
            or t["row"].shape != t["output"].shape or not t["row"].size or int(t["row"].max()) >= rows
            or int(t["output"].max()) >= t["ptc"].shape[0]):
        raise ValueError(f"{folder}: the model's tables do not fit together")
    # The automaton is walked one byte at a time in Python: a memoryview's items are read as fast as an array's.
    return (t["ptc"], np.asarray(t["pc"]), t["classes"].tolist(), memoryview(t["nextmove"]), t["row"].tolist(),
            memoryview(t["output"]))


def _unpack(target: Path) -> None:
    """Write the model's tables into `target` (a folder made next to it, then renamed: another process doing the same
    at the same moment finds one whole folder or the other)."""
    import numpy as np
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    model = LanguageIdentifier.from_model_file(MODEL_FILE)
    tables = {"ptc": np.asarray(model.nb_ptc), "pc": np.asarray(model.nb_pc), "classes": np.array(model.nb_classes),
              "nextmove": np.asarray(model.tk_nextmove), "row": np.asarray(model.tk_row),
              "output": np.asarray(model.tk_output, dtype=np.int32)}
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, table in tables.items():
            np.save(temporary / f"{name}.npy", np.ascontiguousarray(table), allow_pickle=False)
            _drop_from_page_cache(temporary / f"{name}.npy")
        shutil.rmtree(target, ignore_errors=True)  # an unreadable earlier one
        os.rename(temporary, target)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        if not target.is_dir():
            raise


def _drop_from_page_cache(path: Path) -> None:
    """Written, a table's pages are all in the page cache, and a fault maps the cached pages around it too (the
    kernel's fault-around): the first process would hold nearly the whole table. Dropped, only what texts touch is
    read back (MADV_RANDOM: one page a fault)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages are not dropped
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@lru_cache(maxsize=1)
def _py3langid_version() -> str:
    from importlib.metadata import version

    return version("py3langid")


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, "" when the text is too short or the guess is unsure."""
    if sum(ch.isalpha() for ch in text[:400]) < 20:
        return ""
    identifier = _identifier()
    lang, confidence = identifier.classify(text[:LANGUAGE_FIRST_SAMPLE])
    if confidence < LANGUAGE_SURE and len(text) > LANGUAGE_FIRST_SAMPLE:
        lang, confidence = identifier.classify(text[:LANGUAGE_SAMPLE])
    return lang if confidence >= LANGUAGE_MIN_CONFIDENCE else ""
