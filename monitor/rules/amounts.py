"""Sums of money and counted things in the languages of the news: "$40-50 billion", "up to €1bn", "1,2 Milliarden
Euro", "500 millions d'euros", "2 mia. kr.", "300 млн доларів"; "14 Leopard-2 battle tanks", "dozens of drones".

Pattern entities @money and @quantity, and the numbers inside a money string (for update diffs and `rules eval`).
"""

from __future__ import annotations

import re

# A number as written: 1,250 / 1.250 / 1 250 / 1,2 / 2.5; a range: 40-50, 40 to 50, 40 bis 50.
_N = r"\d{1,3}(?:[,.\u00a0\u202f ]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_RANGE = rf"(?:{_N})(?:\s?(?:-|–|—|to|or|bis|à|tot|til|do|до)\s?(?:\$|€|£)?(?:{_N}))?"
_SCALE_WORDS = {
    1e12: r"trillions?|tn|billionen",
    1e9: r"billions?|bn|bln|b|milliard(?:s|en|e|er|ów|y|a)?|miljard(?:en)?|mia\.?|mrd\.?|mds?\.?|md|mld\.?"
         r"|мільярд(?:ів|и|а)?|миллиард(?:ов|а|ы)?|млрд\.?",
    1e6: r"millions?|mn|mln\.?|m|mio\.?|million(?:en|er)|miljoen(?:en)?|milion(?:ów|y|a)?"
         r"|мільйон(?:ів|и|а)?|миллион(?:ов|а|ы)?|млн\.?",
    1e3: r"thousands?|k|tausend|tys\.?|тис\.?|тыс\.?|mille",
}
_SCALE = "|".join(v for v in _SCALE_WORDS.values())
_SYMBOL = r"US\$|A\$|C\$|CA\$|AU\$|NZ\$|HK\$|\$|€|£|¥|₴|₽|zł|USD|EUR|GBP|CHF|DKK|SEK|NOK|PLN|UAH|RUB|JPY|CAD|AUD"
_CURRENCY = (
    r"(?:us\s)?dollars?|euros?|pounds?(?:\ssterling)?|(?:swiss\s)?francs?|franken|pfund|kronor|kroner|kronen|crowns|"
    r"kr\.?|kroon|yen|zlotys?|złotych|złote|zł|hryvnias?|hryvnia|гривень|гривні|гривня|грн\.?|рублей|рублів|руб\.?|"
    r"долларов|доларів|долара|дол\.?|євро|евро|d['’]euros|de\sdollars|dollar|dolarów|dolary|euro"
)
_QUALIFIER = (
    r"(?:up\sto|more\sthan|over|nearly|almost|about|around|roughly|some|at\sleast|approximately|an\sadditional|"
    r"bis\szu|mehr\sals|über|rund|knapp|fast|etwa|jusqu['’]à|plus\sde|près\sde|environ|tot|meer\sdan|ruim|bijna|"
    r"op\still|mere\send|over|næsten|omkring|do|ponad|prawie|około|понад|майже|близько|до|более|почти|около)\s"
)
_MONEY = re.compile(
    rf"(?:{_QUALIFIER})?(?:"
    rf"(?:{_SYMBOL})\s?(?:{_RANGE})(?:\s?(?:{_SCALE})\b)?"  # $40-50 billion, €1bn, US$ 2.3bn
    rf"|(?:{_RANGE})\s?(?:(?:{_SCALE})\s?)?(?:{_SYMBOL}|{_CURRENCY})(?![^\W\d_])"  # 1,2 Mrd. Euro, 10 million euros
    r"|(?:single|double|two|three|four|five|six|seven|eight|nine|ten)[- ]digit (?:million|billion) "
    r"(?:euro|dollar|pound|franc)s? (?:sum|amount|figure)"  # a three-digit million euro sum
    r"|(?:hundreds|tens) of (?:millions|billions) of (?:euros|dollars|pounds)"
    r"|(?:drei|zwei|vier|fünf|sechs|sieben|acht|neun)stellige[nr]? (?:Millionen|Milliarden)(?:betrag|summe)"
    r")",
    re.IGNORECASE,
)
_NUMWORD = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|"
    r"a hundred|a dozen|dozens of|scores of|hundreds of|thousands of|several|"
    r"zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|zwölf|zwanzig|dreißig|fünfzig|hundert|dutzende|mehrere|"
    r"deux|trois|quatre|cinq|huit|neuf|dix|douze|vingt|trente|cinquante|plusieurs|"
    r"twee|drie|vier|vijf|zes|zeven|acht|negen|tien|twaalf|twintig|dertig|vijftig|honderd|enkele|"
    r"tre|fem|seks|syv|otte|tolv|tyve|tredive|halvtreds|hundrede"
)
_UNIT = (
    r"battle tanks?|tanks?|shells?|rounds?|missiles?|rockets?|launchers?|systems?|vehicles?|jets?|aircraft|"
    r"fighters?|helicopters?|howitzers?|guns?|drones?|batter(?:y|ies)|units?|carriers?|interceptors?|warplanes?|"
    r"ships?|boats?|munitions|grenades?|mines?|rifles?|bombs?|projectiles?|"
    r"\w*panzer[n]?|\w*haubitzen?|\w*raketen?|\w*geschosse?|\w*granaten|\w*drohnen?|\w*systeme?|\w*flugzeuge?|"
    r"\w*fahrzeuge?|kampfjets?|hubschrauber[n]?|chars?|obus|missiles|drones|avions|blindés|véhicules|"
    r"\w*tanks|\w*voertuigen|\w*raketten|houwitsers?|kampvliegtuigen|kampvogne|\w*kampvogne|\w*fly|granater|"
    r"czołg(?:i|ów)|pocisk(?:i|ów)|haubic(?:e|y)|dron(?:y|ów)|танк(?:и|ів|ов)|ракет(?:и|а)?|снаряд(?:и|ів|ов)|"
    r"дрон(?:и|ів|ов)|гаубиц(?:і|ь|ы)|систем(?:и|ы)?"
)
_QUANTITY = re.compile(
    rf"(?<![\w.,-])((?:\d{{1,3}}(?:[,.\u00a0 ]\d{{3}})+|\d+)|(?:{_NUMWORD}))\s+(?:[\w-]+\s+){{0,3}}?"
    rf"(?:[\w]+-)*(?:{_UNIT})(?!\w)",
    re.IGNORECASE,
)


def find_money(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of sums of money in the original text."""
    out = []
    for m in _MONEY.finditer(text):
        start = m.start()
        if start and (text[start - 1].isalnum() and not m.group(0)[:1] in "$€£¥₴₽"):
            continue  # inside a word or number
        value = " ".join(m.group(0).split()).rstrip(".,")
        if any(c.isdigit() for c in value) or "digit" in value or " of " in value or "stellig" in value:
            out.append((start, start + len(value), value))
    return out


def find_quantities(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of counted things: "14 Leopard-2 battle tanks", "dozens of drones", "40 Marder-Panzer"."""
    out = []
    for m in _QUANTITY.finditer(text):
        number = m.group(1)
        if len(number) == 4 and number.isdigit() and number[:2] in ("19", "20"):
            continue  # a year, not a count
        rest = m.group(0)[len(number) :].split()
        if rest and rest[0].lower().rstrip("-") in ("mm", "millimetre", "millimeter", "cm", "km", "kilometres",
                                                    "kilometers", "miles", "percent", "per", "%"):
            continue  # a calibre, distance or share, not a count
        before = text[max(0, m.start() - 20) : m.start()]
        words = before.split()
        if before.endswith("-") or (before.endswith(" ") and words and words[-1][:1].isupper()
                                    and not words[-1].isupper()):
            continue  # "Leopard 2 tanks", "F-16 jets": the number is part of a name
        out.append((m.start(), m.end(), " ".join(m.group(0).split())))
    return out


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
