"""Sums of money and counted things in the languages of the news: "$40-50 billion", "up to €1bn", "1,2 Milliarden
Euro", "500 millions d'euros", "2 mia. kr.", "300 млн доларів"; "14 Leopard-2 battle tanks", "dozens of drones".

Pattern entities @money and @quantity, and the numbers inside a money string (for update diffs and `rules eval`).
"""

from __future__ import annotations

import functools
import re

import re2

def _re2(pattern: str) -> str:
    """A pattern written for Python's re, for RE2: \\uXXXX written out, and \\s that also means no-break spaces."""
    pattern = pattern.replace("\\u00a0", "\u00a0").replace("\\u202f", "\u202f")
    return pattern.replace("\\s", "[\\s\u00a0\u202f]")  # RE2's \s is ASCII only


# A number as written: 1,250 / 1.250 / 1 250 / 1,2 / 2.5; a range: 40-50, 40 to 50, 40 bis 50.
_N = r"\d{1,3}(?:[,.\u00a0\u202f ]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_RANGE = rf"(?:{_N})(?:\s?(?:-|–|—|to|or|bis|à|tot|til|do|до)\s?(?:\$|€|£)?(?:{_N}))?"
_SCALE_WORDS = {
    1e12: r"trillions?|tn|billionen",
    1e9: r"billions?|bn|bln|b|milliard(?:s|en|e|er|ów|y|a)?|miljard(?:en|er)?|miliard(?:i|o)|mil\smillones"
         r"|mil\smilhões|bilhões|bilhão|mia\.?|mrd\.?|mds?\.?|md|mld\.?"
         r"|мільярд(?:ів|и|а)?|миллиард(?:ов|а|ы)?|млрд\.?",
    1e6: r"millions?|mn|mln\.?|m|mio\.?|million(?:en|er)|miljoen(?:en)?|miljon(?:er)?|milion(?:ów|y|a|i|e)?|millones|millón"
         r"|milhões|milhão"
         r"|мільйон(?:ів|и|а)?|миллион(?:ов|а|ы)?|млн\.?",
    1e3: r"thousands?|k|tausend|tys\.?|тис\.?|тыс\.?|mille",
}
_SCALE = "|".join(v for v in _SCALE_WORDS.values())
_SYMBOL = r"US\$|A\$|C\$|CA\$|AU\$|NZ\$|HK\$|\$|€|£|¥|₴|₽|zł|USD|EUR|GBP|CHF|DKK|SEK|NOK|PLN|UAH|RUB|JPY|CAD|AUD"
_CURRENCY = (
    r"(?:us\s)?dollars?|euros?|pounds?(?:\ssterling)?|(?:swiss\s)?francs?|franken|pfund|kronor|kroner|kronen|crowns|"
    r"kr\.?|kroon|yen|zlotys?|złotych|złote|zł|hryvnias?|hryvnia|гривень|гривні|гривня|грн\.?|рублей|рублів|руб\.?|"
    r"долларов|доларів|долара|дол\.?|євро|евро|d['’]euros|de\sdollars|de\scouronnes|couronnes|dollar|dolarów|dolary|"
    r"de\seuros|de\sdólares|de\sdolares|dólares|di\seuro|di\sdollari|dollari|de\sreais|reais|euro|"
    # pounds sterling in the other languages, and the Polish "dol."
    r"de\slibras(?:\sesterlinas)?|libras(?:\sesterlinas)?|di\ssterline|sterline|de\slivres(?:\ssterling)?|"
    r"livres\ssterling|pond|pund|funtów|funtow|фунтів|фунтов(?:\sстерлингов)?|dol\.?|"
    # crowns and zlotys in Polish, Ukrainian and Russian ("3 007 800 000 koron"), crowns and dollars named by their
    # country where the adjective comes first ("13,5 млрд шведських крон", "300 Millionen kanadische Dollar")
    r"(?:swedish|norwegian|danish|canadian|australian|schwedische[n]?|norwegische[n]?|dänische[n]?|kanadische[n]?|"
    r"australische[n]?|canadese|kanadensiska|australiska|kanadiske|australske|szwedzkich|norweskich|duńskich|"
    r"шведських|норвезьких|данських|канадських|австралійських|шведских|норвежских|датских|канадских|австралийских)\s"
    r"(?:kronor|kroner|kronen|crowns|koron|крон|кроны|dollars?|доларів|долларов)|"
    r"koron|korony|крон|крони|кроны|злотих|злотых"
)
_QUALIFIER = (
    r"(?:up\sto|more\sthan|over|nearly|almost|about|around|roughly|some|at\sleast|approximately|an\sadditional|"
    r"bis\szu|mehr\sals|über|rund|knapp|fast|etwa|jusqu['’]à|plus\sde|près\sde|environ|tot|meer\sdan|ruim|bijna|"
    r"op\still|mere\send|over|næsten|omkring|do|ponad|prawie|około|понад|майже|близько|до|более|почти|около|"
    r"hasta|más\sde|casi|unos|unas|cerca\sde|alrededor\sde|fino\sa|più\sdi|oltre|quasi|circa|almeno|"
    r"até|mais\sde|quase)\s"
)
# The core of a sum starts with a currency sign or a digit, so the engine skips other positions quickly; a qualifier
# before it ("up to", "rund") is found by looking back, and the sums written in words have a pattern of their own.
# google-re2 (linear time, a DFA: ~40 µs for a 5 KB article where Python's engine took 1.5 ms trying every
# alternative at every character); the boundaries RE2 cannot look around are checked on each match.
_MONEY = re2.compile(_re2(
    rf"(?i)(?:{_SYMBOL})\s?(?:{_RANGE})(?:\s?(?:{_SCALE})\b)?"  # $40-50 billion, €1bn, US$ 2.3bn
    rf"|(?:{_RANGE})\s?(?:(?:{_SCALE})\s?)?(?:{_CURRENCY}|{_SYMBOL})"))  # 1,2 Mrd. Euro, 10 million euros
# (currency words before codes: RE2 takes the first alternative that matches, and "EUR" would cut "euros" short)
_MONEY_WORDS = re.compile(
    r"\b(?:(?:single|double|two|three|four|five|six|seven|eight|nine|ten)[- ]digit (?:million|billion) "
    r"(?:euro|dollar|pound|franc)s? (?:sum|amount|figure)"  # a three-digit million euro sum
    r"|(?:hundreds|tens) of (?:millions|billions) of (?:euros|dollars|pounds)"
    r"|(?:drei|zwei|vier|fünf|sechs|sieben|acht|neun)stellige[nr]? (?:Millionen|Milliarden)(?:betrag|summe))",
    re.IGNORECASE,
)
# Each of _MONEY_WORDS's forms holds one of these parts, at most 16 characters after the form starts and 32 before
# it ends: found first (RE2 on the UTF-8 bytes, case-insensitive), so the pattern itself (case-insensitive, a word
# boundary first, tried at every character) runs only around them. Python's re also matches ſ, ı, İ and K (Kelvin)
# to ASCII letters case-insensitively, RE2 not: a text holding one is searched whole.
_MONEY_WORDS_PARTS = re2.compile(b"(?i)digit (?:million|billion)|of (?:millions|billions) of|stellige")
_PART_BEFORE, _PART_AFTER = 16, 32
_ODD_CASE = "\u017f\u0131\u0130\u212a"


def _money_words(text: str) -> list[re.Match]:
    """_MONEY_WORDS.finditer(text), as a list: the pattern searched only in the windows around its fixed parts."""
    if any(c in text for c in _ODD_CASE):
        return list(_MONEY_WORDS.finditer(text))
    windows: list[list[int]] = []
    for start, end in _spans(_MONEY_WORDS_PARTS, text):
        lo, hi = max(0, start - _PART_BEFORE), end + _PART_AFTER
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = hi  # overlapping windows are searched as one: finditer's matches never overlap
        else:
            windows.append([lo, hi])
    return [m for lo, hi in windows for m in _MONEY_WORDS.finditer(text, lo, hi)]


_QUALIFIED = re.compile(rf"(?:^|(?<=\s))(?:{_QUALIFIER})$", re.IGNORECASE)


_NUMWORD = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|"
    r"a hundred|a dozen|dozens of|scores of|hundreds of|thousands of|several|"
    r"zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|zwölf|zwanzig|dreißig|fünfzig|hundert|dutzende|mehrere|"
    r"deux|trois|quatre|cinq|huit|neuf|dix|douze|vingt|trente|cinquante|plusieurs|"
    r"twee|drie|vier|vijf|zes|zeven|acht|negen|tien|twaalf|twintig|dertig|vijftig|honderd|enkele|"
    r"tre|fem|seks|syv|otte|tolv|tyve|tredive|halvtreds|hundrede|"
    r"cuatro|cinco|seis|siete|ocho|nueve|diez|doce|quince|veinte|treinta|cincuenta|cien|decenas de|"
    r"cientos de|centenares de|varios|varias|"
    r"quattro|cinque|sette|nove|dieci|dodici|quindici|trenta|cinquanta|cento|decine di|centinaia di|"
    r"dois|duas|três|oito|dez|doze|vinte|cem|dezenas de|centenas de|"
    r"två|fyra|sju|nio|tio|tjugo|trettio|femtio|hundra|flera|dussintals"  # (not "åtta": RE2's \\b is ASCII)
)
# (left out, being common words of other languages before a noun: Spanish "dos" is Portuguese "of the" ("dos
# tanques"); Italian "due", "sei", "otto" are English "due", German "sei" and the name Otto; Swedish "sex")
# What can be counted: whole words, and word ends for the compounds of German, Dutch and Danish ("Kampfpanzer").
_UNIT = re.compile(
    r"(?:battle )?tanks?|shells?|rounds?|missiles?|rockets?|launchers?|systems?|vehicles?|jets?|aircraft|"
    r"fighters?|helicopters?|howitzers?|guns?|drones?|batter(?:y|ies)|units?|carriers?|interceptors?|warplanes?|"
    r"ships?|boats?|munitions|grenades?|mines?|rifles?|bombs?|projectiles?|"
    r"\w*(?:panzern?|haubitzen?|raketen?|geschosse?|granaten|drohnen?|systeme?|flugzeuge?|fahrzeuge?|kampfjets?|"
    r"hubschraubern?|tanks|voertuigen|raketten|houwitsers?|kampvliegtuigen|kampvogne|fly|granater|vagnar|haubitsar|"
    r"robotar|drönare|flygplan|pjäser)|"
    r"chars?|obus|obusiers?|canons?|avions|blindés|véhicules|systèmes|hélicoptères|"
    r"tanques|carros|misiles|cohetes|lanzacohetes|sistemas|vehículos|vehiculos|aviones|cazas|helicópteros|"
    r"helicopteros|obuses|cañones|canones|proyectiles|baterías|baterias|municiones|"
    r"carri|missili|razzi|sistemi|veicoli|mezzi|aerei|caccia|elicotteri|obici|cannoni|droni|proiettili|batterie|"
    r"munizioni|"
    r"mísseis|misseis|foguetes|veículos|veiculos|aviões|avioes|caças|cacas|helicópteros|canhões|canhoes|projéteis|"
    r"projeteis|munições|municoes|"
    r"czołg(?:i|ów)|pocisk(?:i|ów)|haubic(?:e|y)|dron(?:y|ów)|танк(?:и|ів|ов)|ракет(?:и|а)?|снаряд(?:и|ів|ов)|"
    r"дрон(?:и|ів|ов)|гаубиц(?:і|ь|ы)|систем(?:и|ы)?",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d{1,3}(?:[,.\u00a0 ]\d{3})+|\d+")
# where a count can start; compiled for bytes (still UTF-8 and Unicode-aware): see _spans
_COUNT = re2.compile((r"(?i)\d+|\b(?:" + _NUMWORD.replace(" ", r"\s+") + r")\b").encode())


_UNANCHORED = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)


def _byte_spans(pattern, data: bytes) -> list[tuple[int, int]]:
    """(start, end) of `pattern`'s matches in `data`, as pattern.finditer(data) gives them, from the compiled RE2
    object's own search called in a loop: the wrapper's finditer builds a match object per match in Python, which
    cost as much as the search (the same calls it makes, without them)."""
    regexp = getattr(pattern, "_regexp", None)
    if regexp is None or _UNANCHORED is None:  # another version of the wrapper: its public interface
        return [m.span() for m in pattern.finditer(data)]
    search, out, pos, end = regexp.Match, [], 0, len(data)
    while True:
        span = search(_UNANCHORED, data, pos, end)[0]
        if span[0] < 0:
            return out
        out.append(span)
        if pos == end:
            return out
        pos = span[1] if span[1] != pos else pos + 1  # (an empty match: step on, as finditer does)


def _spans(pattern, text: str) -> list[tuple[int, int]]:
    """(start, end) in characters of `pattern`'s matches in `text`: RE2 run once on the UTF-8 bytes, the offsets
    turned into characters in one pass over the text (re2's str interface does that per match, at 3x the cost)."""
    data = text.encode()
    if len(data) == len(text):  # ASCII: bytes are characters
        return _byte_spans(pattern, data)
    out, byte_at, char_at = [], 0, 0
    for s, e in _byte_spans(pattern, data):
        start = char_at + len(data[byte_at:s].decode())
        char_at, byte_at = start + len(data[s:e].decode()), e
        out.append((start, char_at))
    return out


def find_money(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of sums of money in the original text, a qualifier before one included ("up to")."""
    out = []
    for start, end in _spans(_MONEY, text):
        before, after = text[start - 1 : start], text[end : end + 1]
        if text[start].isdigit() and (before.isalnum() or before in (".", ",")):
            continue  # inside a word or a number
        if after.isalpha() and not text[start:end][-1:] in "$€£¥₴₽.":
            continue  # a currency word running on ("euroscepticism")
        q = _QUALIFIED.search(text, max(0, start - 24), start)
        if q is not None:
            start = q.start()
        value = " ".join(text[start:end].split()).rstrip(".,")
        out.append((start, start + len(value), value))
    for m in _money_words(text):
        out.append((m.start(), m.end(), " ".join(m.group(0).split())))
    return sorted(out)


def find_quantities(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of counted things: "14 Leopard-2 battle tanks", "dozens of drones", "40 Marder-Panzer".

    A number (digits or a number word, found by one RE2 scan), then within three more words a counted noun (the
    last part of a hyphenated word counts: "Leopard-2-Panzer"). A single regex doing both backtracks at every word."""
    out, done = [], 0
    for start, end in _spans(_COUNT, text):
        if start < done or (start and (text[start - 1].isalnum() or text[start - 1] in "-_.,")):
            continue
        number = text[start:end]
        if number[:1].isdigit():
            full = _NUMBER.match(text, start)
            number = full.group() if full else number
            if full and full.end() < len(text) and text[full.end()].isalnum():
                continue  # "2A6", "16th": not a count
        elif end < len(text) and text[end].isalpha():
            continue
        rest = text[start + len(number) : start + len(number) + 160]
        words = rest.split(None, 5)[:4]
        unit = next((k for k, w in enumerate(words) if _is_unit(w)), None)  # (most numbers count nothing: first)
        if unit is None or not _plausible(text, start, number, words[0]):
            continue
        offset = start + len(number)
        for w in words[: unit + 1]:
            offset = text.index(w, offset) + len(w)
        stop = offset - (len(words[unit]) - len(words[unit].rstrip(".,;:!?)\"'”’»")))
        out.append((start, stop, " ".join(text[start:stop].split())))
        done = stop
    return out


@functools.lru_cache(maxsize=1 << 16)  # the same few hundred words follow numbers in every article
def _is_unit(word: str) -> bool:
    bare = word.strip(".,;:!?()[]\"'“”‘’«»")
    return bool(bare) and (_UNIT.fullmatch(bare) is not None or _UNIT.fullmatch(bare.rsplit("-", 1)[-1]) is not None)


def _plausible(text: str, start: int, number: str, following: str) -> bool:
    """Not a year, a calibre or distance, nor a number inside a name ("Leopard 2 tanks", "F-16 jets")."""
    if len(number) == 4 and number.isdigit() and number[:2] in ("19", "20"):
        return False
    if following.lower().rstrip("-.,") in ("mm", "millimetre", "millimeter", "cm", "km", "kilometres", "kilometers",
                                           "miles", "percent", "per", "%"):
        return False
    before = text[max(0, start - 20) : start]
    words = before.split()
    if before.endswith(("-", "_")) or (before[-1:].isalnum()):
        return False
    return not (before.endswith(" ") and words and words[-1][:1].isupper() and not words[-1].isupper()
                and words[-1][:1].isalpha() and number[:1].isdigit())


# numbers inside a money string ---------------------------------------------------------------------------------
_AMOUNT = re.compile(rf"({_N})(?:\s?(?:-|–|to|bis)\s?({_N}))?\s?({_SCALE})?(?![^\W\d_])", re.IGNORECASE)


def _number(text: str) -> float:
    """1,250 -> 1250; 1.250 -> 1250 (thousands); 1,2 / 2.5 -> decimals."""
    t = text.replace("\u00a0", " ").replace("\u202f", " ").replace(" ", "")
    if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", t):
        return float(re.sub(r"[.,]", "", t))
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+\.\d+", t):
        return float(t.replace(",", ""))
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+,\d+", t):
        return float(t.replace(".", "").replace(",", "."))
    return float(t.replace(",", "."))


def _scale(word: str | None) -> float:
    if not word:
        return 1.0
    for factor, pattern in _SCALE_WORDS.items():
        if re.fullmatch(pattern, word, re.IGNORECASE):
            return factor
    return 1.0


def amounts(text: str) -> frozenset[float]:
    """The sums named in a money string, as numbers: "$1.85 billion" -> {1.85e9}; "$40-50 billion" -> {4e10, 5e10}."""
    out = set()
    for m in _AMOUNT.finditer(text):
        factor = _scale(m.group(3))
        for part in (m.group(1), m.group(2)):
            if part:
                out.add(round(_number(part) * factor))
    return frozenset(out)
