"""Document-level entities: who speaks (@speaker), when things happen (@date), and questions (@question).

They read the whole article (title, dateline, transcript speaker labels, its date) and the gazetteer kinds named
below, and give hits like any entity, so every rule can use them. Pure functions over a matcher Context.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from datetime import date, timedelta
from typing import Any

from .entities import BUILTIN_KINDS  # noqa: F401  (re-exported for the matcher)
from .evidence import hits_within

# Gazetteer kinds the built-ins read (a pack without them simply gets no such hits).
SELF_KIND = "self_reference"  # I, we, our, ich, wir, nous ... : canonical is ignored
THIRD_KIND = "third_person"  # he, she, the President ...: an official named before
OFFICIAL_KIND = "official"  # heads of state and government, ministers, agencies: canonical = their state
STATE_KIND = "state"
TIME_KIND = "relative_time"  # today, last week, gestern ... : canonical past | today | future
MONTH_KIND = "month"  # canonical 1..12
WEEKDAY_KIND = "weekday"  # canonical 1..7, Monday = 1

# A transcript speaker label at the start of a line: "THE PRESIDENT:", "MS. JEAN-PIERRE:", "Q:" or "Q  Why".
LABEL_LINE = re.compile(r"(?m)^[ \t\u00a0]*((?:Q|[A-Z][A-Z.'’ -]{1,48}[A-Z.])(?=:[ \t\u00a0])|Q(?=[ \t\u00a0]{1,4}[A-Z\"“—-]))")
_AFTER_BREAK = re.compile("\n" + LABEL_LINE.pattern.removeprefix("(?m)^"))  # a label, from its line break on
# A dateline: "WASHINGTON —", "BERLIN (Reuters) -", "Kyiv, Ukraine (AP) —" at the start of the text.
DATELINE = re.compile(r"\s*([A-Z][A-Za-z'’.]+(?: [A-Z][A-Za-z'’.]+){0,2})(?:, [A-Z][A-Za-z .]+)?"
                      r"(?: \([^)]{1,30}\))?\s*[—–-]{1,2}\s")
YEAR = re.compile(r"\b(19[5-9]\d|20\d\d)\b")
# Words before a year that make it a time ("in 2022", "seit 2022") rather than a name ("the Act of 1961").
YEAR_PREPOSITIONS = frozenset({
    "in", "since", "during", "until", "from", "through", "throughout", "by", "early", "late", "mid", "im", "seit",
    "bis", "ab", "anfang", "ende", "en", "depuis", "jusqu", "sinds", "tot", "vanaf", "siden", "i", "fra", "w", "od",
    "do", "v", "s", "z", "u", "до",
})
DAY_NUMBER = re.compile(r"\d{1,2}")

EHit = tuple[int, int, str]


def find(ctx: Any, kind: str) -> list[EHit]:
    return {"speaker": speakers, "date": dates, "question": questions}[kind](ctx)


# @question --------------------------------------------------------------------------------------------------------
def questions(ctx: Any) -> list[EHit]:
    """Sentences that ask (end with "?"), and every sentence of a transcript's "Q" turn (a reporter asking).

    Found from the question marks and the speaker labels, so an article without either costs one scan."""
    nz = ctx.nz
    out = set()
    at = nz.original.find("?")
    while at >= 0:
        a, b = nz.sentence_at(nz.to_norm(at))
        tail = nz.original[nz.to_orig(a) : nz.to_orig(max(a, b - 1)) + 1].rstrip(" \t\n\"'”’)]*_")
        if tail.endswith("?"):
            out.add((a, b, "question"))
        at = nz.original.find("?", at + 1)
    starts, names = _labels_of(ctx)
    for k, name in enumerate(names):
        if name == "Q":
            end = starts[k + 1] if k + 1 < len(starts) else len(nz.norm)
            pos = starts[k]
            while pos < end:  # each sentence of the turn
                a, b = nz.sentence_at(pos)
                out.add((a, min(b, end), "question"))
                pos = max(b, pos + 1)
    return sorted(out)


# @speaker ---------------------------------------------------------------------------------------------------------
def speakers(ctx: Any) -> list[EHit]:
    """First-person words resolved to the state they speak for: the official the sentence attributes them to,
    else the transcript turn's speaker, else the document's speaker (title, dateline, the source's country)."""
    first, third = ctx.entity_hits(SELF_KIND), ctx.entity_hits(THIRD_KIND)
    if not first and not third:
        return []
    doc = document_speaker(ctx)
    out = []
    for refs, resolve in ((first, attributed), (third, named_before)):
        for s, e, _v in refs:
            label = turn_label(ctx, s)
            if label == "Q":
                continue  # a reporter's "we" speaks for no state
            state = resolve(ctx, s) or (official_state(ctx, label) if label else None) or doc
            if state:
                out.append((s, e, state))
    return sorted(out)


def named_before(ctx: Any, pos: int) -> str | None:
    """The state of the first official named in the paragraph before `pos` (readouts name the subject first)."""
    a, _b = ctx.nz.paragraph_at(pos)
    officials = ctx.entity_hits(OFFICIAL_KIND)  # sorted: the first at or after `a` is the first named
    k = bisect_left(officials, (a,))
    if k == len(officials) or officials[k][0] >= pos:
        return None
    first, best, k = officials[k][0], officials[k][2], k + 1
    while k < len(officials) and officials[k][0] == first:  # two officials at one place: the least state, as min()
        best, k = min(best, officials[k][2]), k + 1
    return best


def document_speaker(ctx: Any) -> str | None:
    """The state a document speaks for: the source's configured country, the first official in the title, else
    the dateline's place."""
    cached = ctx.memo.get("doc_speaker", False)
    if cached is not False:
        return cached
    found = ctx.country or None
    if not found and ctx.title_end:  # an official in the title ("Remarks by President Biden"); a state in the
        hits = [h for h in ctx.entity_hits(OFFICIAL_KIND) if h[1] <= ctx.title_end]  # title only for transcripts:
        if not hits and _labels_of(ctx)[0]:  # "US urges allies" is news about the US, not by it
            hits = [h for h in ctx.entity_hits(STATE_KIND) if h[1] <= ctx.title_end]
        found = min(hits)[2] if hits else None
    if not found:
        found = _dateline_state(ctx)
    ctx.memo["doc_speaker"] = found
    return found


def _dateline_state(ctx: Any) -> str | None:
    text = ctx.nz.original
    start = ctx.nz.to_orig(ctx.title_end) if ctx.title_end else 0
    m = DATELINE.match(text, start, start + 80)
    if not m:
        return None
    a, b = ctx.nz.to_norm(m.start(1)), ctx.nz.to_norm(m.end(1) - 1) + 1
    for s, e, state in ctx.entity_hits(STATE_KIND):
        if s >= a and e <= b:
            return state
    return None


def attributed(ctx: Any, pos: int) -> str | None:
    """The state of the official named in the sentence around `pos` (the nearest one), if any."""
    a, b = ctx.nz.sentence_at(pos)
    near = [(abs(s - pos), state) for s, _e, state in hits_within(ctx.entity_hits(OFFICIAL_KIND), a, b)]
    return min(near)[1] if near else None


def official_state(ctx: Any, label: str) -> str | None:
    """The state of a speaker label ("SECRETARY AUSTIN", "PRESIDENT ZELENSKYY") when it names an official."""
    spans = ctx.memo.setdefault("label_states", {})
    if label not in spans:
        spans[label] = ctx.lookup(OFFICIAL_KIND, label)
    return spans[label]


def _labels_of(ctx: Any) -> tuple[list[int], list[str]]:
    labels = ctx.memo.get("labels")
    if labels is None:
        labels = ctx.memo["labels"] = _labels(ctx)
    return labels


def turn_label(ctx: Any, pos: int) -> str | None:
    """The speaker label of the transcript turn holding `pos` (a turn runs until the next label), or None."""
    labels = _labels_of(ctx)
    if not labels[0]:
        return None
    k = bisect_right(labels[0], pos) - 1
    return labels[1][k] if k >= 0 else None


def label_lines(text: str) -> list[re.Match]:
    """Matches whose group 1 is each label LABEL_LINE.finditer finds (the same labels at the same places): the first
    line's tried at the text's start, every other's found from its line break by one search (a pattern opening with
    a "\n" skips to the next one; LABEL_LINE's "^" makes finditer try every character). No label runs over a line
    break, so the matches never overlap."""
    first = LABEL_LINE.match(text)
    return [first, *_AFTER_BREAK.finditer(text)] if first is not None else list(_AFTER_BREAK.finditer(text))


def _labels(ctx: Any) -> tuple[list[int], list[str]]:
    """(normalised start, label) of every line that opens with a speaker label ("THE PRESIDENT:", "Q  Why ...")."""
    nz = ctx.nz
    starts, names = [], []
    for m in label_lines(nz.original):
        starts.append(nz.to_norm(m.start(1)))
        names.append("Q" if m.group(1) == "Q" else " ".join(m.group(1).split()))
    return starts, names


# @date ------------------------------------------------------------------------------------------------------------
def dates(ctx: Any) -> list[EHit]:
    """Time expressions, each as past, today or future relative to the article's date: relative ones from the
    gazetteer ("last week", "heute"), and dates, months, weekdays and years compared with the article's date."""
    out = [(s, e, v) for s, e, v in ctx.entity_hits(TIME_KIND) if v in ("past", "today", "future")]
    today = _article_date(ctx.published)
    if today is None:
        return sorted(out)
    for s, e, v in ctx.entity_hits(WEEKDAY_KIND):
        # the article's own weekday is today; another ("said on Thursday" in Saturday's paper) is the news of the
        # last days as reported, neither today nor background ("last Monday" is past, from relative_time)
        if v == str(today.isoweekday()):
            out.append((s, e, "today"))
    for s, e, v in ctx.entity_hits(MONTH_KIND):
        when = _month_date(ctx, s, e, v, today)
        if when is not None:
            out.append((s, e, when))
    norm = ctx.nz.norm
    for m in YEAR.finditer(norm):
        before = norm[max(0, m.start() - 12) : m.start()].split()
        if not before or before[-1] not in YEAR_PREPOSITIONS:
            continue
        year = int(m.group())
        if year < today.year:
            out.append((m.start(), m.end(), "past"))
        elif year > today.year:
            out.append((m.start(), m.end(), "future"))
    return sorted(out)


def _article_date(published: str | None) -> date | None:
    if not published:
        return None
    try:
        return date.fromisoformat(published[:10])
    except ValueError:
        return None


def _month_date(ctx: Any, s: int, e: int, month: str, today: date) -> str | None:
    """"March 3" / "3 March" / "in March": past, today or future against the article's date."""
    norm = ctx.nz.norm
    try:
        m = int(month)
    except ValueError:
        return None
    after = norm[e : e + 12].split()
    before = norm[max(0, s - 4) : s].split()
    day = next((int(w) for w in after[:1] if DAY_NUMBER.fullmatch(w) and 1 <= int(w) <= 31), None)
    if day is None:
        day = next((int(w) for w in before[-1:] if DAY_NUMBER.fullmatch(w) and 1 <= int(w) <= 31), None)
    year = next((int(w) for w in after[:3] if YEAR.fullmatch(w)), today.year)
    if day is None:
        if (year, m) == (today.year, today.month):
            return None  # "in March" said in March: this month, not a day
        return "past" if (year, m) < (today.year, today.month) else "future"
    try:
        when = date(year, m, day)
    except ValueError:
        return None
    if when > today + timedelta(days=1) and year == today.year and m > today.month + 6:
        when = date(year - 1, m, day)  # "December 20" in a January text: last December
    if when == today:
        return "today"
    if when == today - timedelta(days=1):
        return None  # the day before: news reported the next morning, neither today nor background
    return "past" if when < today else "future"
