"""Document-level entities in the rule language: @speaker, @date, @question, on the shipped gazetteers."""

from __future__ import annotations


import pytest

from monitor.models import Article



@pytest.fixture(scope="module")
def pack(shipped_rules):
    return shipped_rules  # load_rules(rules/), compiled once per session (tests/conftest.py)


def hits(pack, kind: str, text: str, title: str = "", **kw) -> list[tuple[str, str]]:
    ctx = pack.context(Article(url="t:", title=title, text=text, language=kw.pop("language", "en"), **kw))
    return [(ctx.nz.span_text(s, e), v) for s, e, v in ctx.entity_hits(kind)]


def test_first_person_speaks_for_the_official_in_the_title(pack):
    got = hits(pack, "speaker", "Today, I'm announcing another $800 million.", title="Remarks by President Biden")
    assert got == [("I", "United States")]


def test_first_person_speaks_for_the_official_the_sentence_quotes(pack):
    got = hits(pack, "speaker", '"We will send more tanks," Boris Pistorius said.', title="Tanks for Ukraine")
    assert got == [("We", "Germany")]


def test_a_transcript_turn_speaks_for_its_speaker_and_a_reporter_for_no_state(pack):
    text = ("PRIME MINISTER SUNAK:  We will provide more tanks.\n\n"
            "Q    Will we see more from Washington?\n\n"
            "THE PRESIDENT:  We are sending more.")
    got = hits(pack, "speaker", text, title="Remarks by President Biden and Prime Minister Sunak")
    assert ("We", "United Kingdom") in got and ("We", "United States") in got
    assert not any(word == "we" for word, _v in got)  # the reporter's "we"


def test_a_news_title_naming_a_state_does_not_make_it_the_speaker(pack):
    assert hits(pack, "speaker", "We need more, he said.", title="US urges allies to give more") == []


def test_a_source_country_resolves_first_person_words(pack):
    assert hits(pack, "speaker", "Wir liefern weitere Panzer.", language="de", country="Germany") == \
        [("Wir", "Germany")]


def test_dates_are_past_today_or_future_against_the_article_date(pack):
    text = ("Last week we signed one package. Today we sign another. On March 3 we signed a third, in 2022 a "
            "fourth, and on Tuesday a fifth. Tomorrow comes a sixth, under the Foreign Assistance Act of 1961.")
    got = hits(pack, "date", text, published="2023-03-15")  # a Wednesday
    assert ("Last week", "past") in got and ("Today", "today") in got and ("Tomorrow", "future") in got
    assert ("March", "past") in got and ("2022", "past") in got  # March 3 is before March 15
    assert not any(word == "1961" for word, _v in got)  # a name, not a time
    assert not any(word == "Tuesday" for word, _v in got)  # another weekday: the news of the last days


def test_a_weekday_is_today_on_its_own_day_and_last_monday_is_past(pack):
    assert ("Wednesday", "today") in hits(pack, "date", "Germany pledged tanks on Wednesday.", published="2023-01-25")
    # "said on Monday" in Wednesday's paper is the news of the last days as reported: neither today nor background
    assert hits(pack, "date", "Germany pledged tanks on Monday.", published="2023-01-25") == []
    assert ("last Monday", "past") in hits(pack, "date", "Germany pledged tanks last Monday.", published="2023-01-25")
    assert hits(pack, "date", "Germany pledged tanks on Wednesday.") == []  # no article date: no comparison


def test_german_time_words_need_a_german_article(pack):
    assert ("gestern", "past") in hits(pack, "date", "Deutschland lieferte gestern Panzer.", language="de")
    assert hits(pack, "date", "Gestern is a word.", language="en") == []


def test_questions_are_sentences_that_ask_and_a_reporters_turn(pack):
    text = "Will Germany send tanks? It will.\n\nQ    The Pentagon announced a package today.\n\nMR. KIRBY: Yes."
    got = [w for w, _v in hits(pack, "question", text)]
    assert got == ["Will Germany send tanks?", "Q    The Pentagon announced a package today."]
