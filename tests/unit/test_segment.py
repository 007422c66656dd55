"""Paragraphs and sentences of real text: hard wraps, bullets, headings, speaker labels, abbreviations, languages."""

from __future__ import annotations

from monitor.rules.normalise import split_sentences
from monitor.rules.segment import segment, wrap_width


def sentences(text: str, language: str = "") -> list[str]:
    return [" ".join(text[a:b].split()) for a, b in split_sentences(text, language)]


WRAPPED = """\
THE PRESIDENT:  Good morning.  Today, I'm announcing another package of
security assistance that will provide additional artillery munitions and
armored vehicles to Ukraine.  This package includes 155 mm shells.

Q    Mr. President, will there be more?
"""


def test_a_hard_wrapped_sentence_is_one_sentence():
    got = sentences(WRAPPED)
    assert "Today, I'm announcing another package of security assistance that will provide additional artillery " \
           "munitions and armored vehicles to Ukraine." in got


def test_a_wrap_before_a_capitalised_word_is_found_from_the_text_width():
    text = ("By the authority vested in me as President by the Constitution and the\n"
            "laws of the United States of America, including section 621 of the\n"
            "Foreign Assistance Act of 1961 (FAA), I hereby delegate to the Secretary\n"
            "of State the authority to direct the drawdown of up to $200 million.\n")
    assert wrap_width(text) == 72
    assert len(sentences(text)) == 1


def test_speaker_labels_and_questions_start_paragraphs():
    segs = segment(WRAPPED)
    starts = {WRAPPED[p : p + 2] for p in segs.paragraphs}
    assert "Q " in starts


def test_trafilatura_paragraph_lines_and_a_short_heading_are_their_own_sentences():
    text = "Germany pledges more tanks for Ukraine amid Russian offensive\nBerlin said on Monday it would send " \
           "ten more Leopard tanks.\nThe decision came after talks."
    assert sentences(text) == [
        "Germany pledges more tanks for Ukraine amid Russian offensive",
        "Berlin said on Monday it would send ten more Leopard tanks.",
        "The decision came after talks.",
    ]


def test_bullets_and_markdown_headings_are_paragraphs():
    text = "The package includes:\n- 14 Leopard 2 tanks\n- 3,000 rounds of ammunition\n\\### Background\nMore text."
    assert sentences(text) == ["The package includes:", "- 14 Leopard 2 tanks", "- 3,000 rounds of ammunition",
                               "\\### Background", "More text."]


def test_abbreviations_initials_and_decimals_do_not_end_sentences():
    text = ("The U.S. Army and Gen. Mark Milley met Sen. Joe Manchin on Monday. No. 5 on the list is $1.5 billion. "
            "Joseph R. Biden signed it.")
    assert sentences(text) == ["The U.S. Army and Gen. Mark Milley met Sen. Joe Manchin on Monday.",
                               "No. 5 on the list is $1.5 billion.", "Joseph R. Biden signed it."]


def test_german_abbreviations_do_not_end_sentences():
    text = "Die Ukraine erhält u.a. Panzer im Wert von 2 Mrd. Euro. Das sagte z.B. der Minister."
    assert sentences(text, "de") == ["Die Ukraine erhält u.a. Panzer im Wert von 2 Mrd. Euro.",
                                     "Das sagte z.B. der Minister."]


def test_spanish_italian_and_portuguese_abbreviations_do_not_end_sentences():
    assert sentences("La Sra. Robles lo anunció. Ucrania recibirá p.ej. Tanques.", "es") == [
        "La Sra. Robles lo anunció.", "Ucrania recibirá p.ej. Tanques."]
    assert sentences("Il dott. Rossi e il Sig. Bianchi lo hanno detto. Poi è partito.", "it") == [
        "Il dott. Rossi e il Sig. Bianchi lo hanno detto.", "Poi è partito."]
    assert sentences("A Sra. Ministra e a Dra. Silva falaram. Depois saíram.", "pt") == [
        "A Sra. Ministra e a Dra. Silva falaram.", "Depois saíram."]


def test_quoted_sentences_end_at_the_closing_quote():
    text = '"We will send more tanks." The minister said it twice.'
    assert sentences(text) == ['"We will send more tanks."', "The minister said it twice."]


def test_a_dialogue_dash_opens_a_sentence():
    # Polish, Russian and Italian papers open a quote with a dash: the sentence before ends at its full stop (it had
    # run on into the quote, whose "jeżeli chodzi o", as regards, read as a hedge "if")
    text = "Prezydent zapowiedział, że Polska przekaże Ukrainie czołgi Leopard. - Polska jest w awangardzie. — Tak."
    assert sentences(text, "pl") == ["Prezydent zapowiedział, że Polska przekaże Ukrainie czołgi Leopard.",
                                     "- Polska jest w awangardzie.", "— Tak."]
    assert sentences("Talks in the U.S. - China row went on.") == ["Talks in the U.S. - China row went on."]


def test_a_dateline_stays_with_its_sentence():
    text = "KYIV, Ukraine (AP) — Germany will send tanks, officials said. Another sentence."
    assert sentences(text)[0] == "KYIV, Ukraine (AP) — Germany will send tanks, officials said."


def test_a_sentence_found_locally_is_the_one_the_whole_split_gives():
    import json
    from pathlib import Path

    from monitor.rules.normalise import Normalised

    dev = Path(__file__).resolve().parents[1] / "data" / "pledge-dev" / "dev.jsonl"
    texts = [json.loads(line)["text"] for line in dev.read_text(encoding="utf-8").splitlines()[:40]]
    for n, text in enumerate(texts):
        full = Normalised(text)
        spans = full.sentences()
        for pos in range(1, len(full.norm) - 1, 97):
            if full.norm[pos] != " ":
                assert Normalised(text).sentence_at(pos) == spans[full.sentence_index(pos)], (n, pos)


def test_a_paragraph_found_locally_is_the_one_the_whole_split_gives():
    import json
    from pathlib import Path

    from monitor.rules.normalise import Normalised

    dev = Path(__file__).resolve().parents[1] / "data" / "pledge-dev" / "dev.jsonl"
    texts = [json.loads(line)["text"] for line in dev.read_text(encoding="utf-8").splitlines()[:40]]
    for n, text in enumerate(texts):
        full = Normalised(text)
        full.sentences()
        for pos in range(1, len(full.norm) - 1, 211):
            if full.norm[pos] != " ":
                assert Normalised(text).paragraph_at(pos) == full.paragraph_at(pos), (n, pos)
