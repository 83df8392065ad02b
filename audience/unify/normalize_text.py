"""Generic text normalisations for matching: numerals, symbols, lower, ascii, whitespace.

Each function takes one non-null string and returns the normalised string (possibly
empty; :func:`audience.unify.normalize.normalize` turns empty results into None).
"""

from __future__ import annotations

import re
import unicodedata

from unidecode import unidecode

__all__ = ["to_ascii", "lower", "numerals", "symbols", "whitespace"]

# --- numerals -------------------------------------------------------------------------

_CARDINALS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
    "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
    "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_TENS_ORDINALS = {
    "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50,
    "sixtieth": 60, "seventieth": 70, "eightieth": 80, "ninetieth": 90,
}  # fmt: skip
_UNIT_WORDS = {w: n for w, n in (_CARDINALS | _ORDINALS).items() if 1 <= n <= 9}
_SINGLE_WORDS = _CARDINALS | _ORDINALS | _TENS | _TENS_ORDINALS


def _alternation(words: dict[str, int]) -> str:
    # Longest first so "seventeen" is not read as "seven" + "teen".
    return "|".join(sorted(words, key=len, reverse=True))


# "twenty one", "twenty-one", "twenty-first" -> 21 (tens word directly followed by a unit).
_COMPOUND_RE = re.compile(
    rf"\b({_alternation(_TENS)})(?:\s+|-)({_alternation(_UNIT_WORDS)})\b", re.IGNORECASE
)
_ALPHA_WORD_RE = re.compile(r"\b[A-Za-z]+\b")
_DIGIT_ORDINAL_RE = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)
_ROMAN_VALID_RE = re.compile(r"X{0,3}(IX|IV|V?I{0,3})")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10}


def _roman_to_int(text: str) -> int:
    total = 0
    values = [_ROMAN_VALUES[c] for c in text]
    for i, v in enumerate(values):
        # Subtractive notation: a smaller value before a larger one counts negative (IV = 4).
        total += -v if i + 1 < len(values) and values[i + 1] > v else v
    return total


def _number_word(match: re.Match[str]) -> str:
    word = match.group()
    number = _SINGLE_WORDS.get(word.lower())
    return word if number is None else str(number)


def _roman_tail(value: str) -> str:
    # Roman numerals only as the LAST token of the value ("Henry III", "Louis XIV."), at
    # least two letters long: a single "I", "V" or "X" is far more often an initial.
    end = len(value)
    while end and not value[end - 1].isalnum():
        end -= 1
    start = end
    while start and value[start - 1].isalnum():
        start -= 1
    token = value[start:end].upper()
    if len(token) < 2 or not _ROMAN_VALID_RE.fullmatch(token):
        return value
    return f"{value[:start]}{_roman_to_int(token)}{value[end:]}"


def numerals(value: str) -> str:
    """Write stand-alone number words and simple numerals as digits.

    Rules (everything else is left exactly as it is, digits included: no zero stripping):

    * cardinal and ordinal words 0-19 and the tens 20-90, any case: "three", "Third" -> "3";
    * a tens word followed by a unit word, by a space or a hyphen: "twenty-one",
      "Twenty First" -> "21" (no "hundred"/"thousand" multipliers);
    * digit ordinals: "3rd", "21st" -> "3", "21";
    * a roman numeral of two or more letters from II to XXXIX as the last token of the
      value: "Henry III" -> "Henry 3" (single letters are kept as initials).
    """
    if "ty" in value.lower():  # every tens word ends in "ty"; skip the regex otherwise
        value = _COMPOUND_RE.sub(
            lambda m: str(_TENS[m.group(1).lower()] + _UNIT_WORDS[m.group(2).lower()]), value
        )
    value = _ALPHA_WORD_RE.sub(_number_word, value)
    if any(c.isdigit() for c in value):
        value = _DIGIT_ORDINAL_RE.sub(r"\1", value)
    return _roman_tail(value)


# --- symbols --------------------------------------------------------------------------

# Removed without a space: they sit inside words ("O'Brien", "St.", "Ph.D.").
_JOINERS = frozenset("'.\u2019\u2018\u02bc`\u00b4")


class _SymbolTable(dict[int, int | str | None]):
    """str.translate table filled lazily, one entry per distinct character seen."""

    def __missing__(self, codepoint: int) -> int | str | None:
        char = chr(codepoint)
        result: int | str | None
        if char in _JOINERS:
            result = None
        elif char.isspace() or unicodedata.category(char)[0] in "LNM":
            # Letters, numbers and combining marks (accents of decomposed text) stay.
            result = codepoint
        else:
            result = " "
        self[codepoint] = result
        return result


_SYMBOLS = _SymbolTable()


def symbols(value: str) -> str:
    """Remove punctuation and symbols, keeping letters, digits and whitespace.

    Apostrophes and periods are dropped without a space ("O'Brien" -> "OBrien",
    "St." -> "St"); every other punctuation or symbol character (-, /, _, comma, &, @...)
    becomes a space ("Mary-Jane" -> "Mary Jane"). Whitespace is not collapsed: add the
    ``whitespace`` step for that.
    """
    return value.translate(_SYMBOLS)


# --- case, ASCII, whitespace ----------------------------------------------------------


def lower(value: str) -> str:
    """Lower case with Unicode case folding ("Straße" -> "strasse")."""
    return value.casefold()


def to_ascii(value: str) -> str:
    """Transliterate to ASCII with unidecode ("José Núñez" -> "Jose Nunez", "Ø" -> "O")."""
    if value.isascii():
        return value
    return unidecode(value)


def whitespace(value: str) -> str:
    """Trim and collapse every run of (Unicode) whitespace to one space."""
    return " ".join(value.split())
