"""Street-address normalisation for matching (USPS Publication 28 abbreviations).

The word tables (street types, directionals, unit designators) are usaddress-scourgify's
own ``address_constants``. We do not run scourgify's parser per value: at ~150 us a value it
would cost minutes at a million addresses, and the token table alone gives the same keys on
the variants people write ("Street"/"St."/"St", "Apt 4"/"#4").
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from scourgify import address_constants
from unidecode import unidecode

__all__ = ["normalize_address"]

# Secondary-unit designators people use interchangeably for the same dwelling or office:
# "Apt 4", "#4", "Unit 4", "Suite 4" and "Room 4" all become "unit 4".
_UNIT_WORDS = frozenset({"apartment", "apt", "unit", "suite", "ste", "room", "rm", "#"})
_UNIT = "unit"

# "#4" -> "# 4", "apt4b" -> "apt 4b": the designator and the number become two tokens.
_HASH_RE = re.compile(r"#")
_GLUED_UNIT_RE = re.compile(r"\b(apt|ste|unit|rm)(\d+[a-z]?)\b")
_JOINERS_RE = re.compile(r"['.]")
_SEPARATORS_RE = re.compile(r"[^0-9a-z#]+")


@cache
def _token_map() -> dict[str, str]:
    """lower-case word -> canonical lower-case word, from scourgify's USPS tables."""
    mapping = {k.lower(): v.lower() for k, v in address_constants.STREET_TYPE_ABBREVIATIONS.items()}
    directionals = address_constants.DIRECTIONAL_REPLACEMENTS
    mapping.update({k.lower(): v.lower() for k, v in directionals.items()})
    mapping.update({v.lower(): v.lower() for v in directionals.values()})
    for long_form, abbreviation in address_constants.OCCUPANCY_TYPE_ABBREVIATIONS.items():
        # "KEY" is both a street type (KY) and a unit type; as a unit it is rare, so the
        # street-type reading wins.
        for word in (long_form.lower(), abbreviation.lower()):
            if word not in mapping:
                mapping[word] = abbreviation.lower()
    for word in _UNIT_WORDS:
        mapping[word] = _UNIT
    return mapping


def _canonical_tokens(text: str) -> str:
    """Token-level canonical form: lower, no punctuation, USPS words, one unit form."""
    text = _JOINERS_RE.sub("", text.lower())
    text = _GLUED_UNIT_RE.sub(r"\1 \2", _HASH_RE.sub(" # ", text))
    mapping = _token_map()
    tokens: list[str] = []
    for raw in _SEPARATORS_RE.split(text):
        if not raw:
            continue
        token = mapping.get(raw, raw)
        if token == _UNIT and tokens and tokens[-1] == _UNIT:
            continue  # "Apt #4" -> "unit 4", not "unit unit 4"
        tokens.append(token)
    return " ".join(tokens)


# ", Portland OR" / ", Houston, TX 77034" at the end of a line: the city, state and ZIP of a
# full address. The street line is what is compared, so that part is dropped.
_CITY_STATE_RE = re.compile(
    r",\s*[A-Za-z][A-Za-z .'-]*,?\s+([A-Za-z]{2})\.?(\s+\d{5}(-\d{4})?)?\s*$"
)


@cache
def _states() -> frozenset[str]:
    return frozenset(v.upper() for v in address_constants.STATE_ABBREVIATIONS.values())


def _street_line(text: str) -> str:
    match = _CITY_STATE_RE.search(text)
    if match and match.group(1).upper() in _states():
        return text[: match.start()]
    return text


@lru_cache(maxsize=65536)
def normalize_address(value: str) -> str:
    """Normalise a street address (a line, or a full address) for matching.

    ASCII (unidecode); lower case; apostrophes and periods removed; other punctuation is a
    separator; street types (Street -> st, Avenue -> ave, Road -> rd, Boulevard -> blvd...),
    directionals (North -> n) and unit types (Floor -> fl) take their USPS abbreviation;
    Apartment/Apt/Unit/Suite/Ste/Room/Rm/# all become "unit". Every such word is abbreviated,
    also inside the street name ("Hill Road" -> "hl rd"): the output is a matching key.

    A trailing ", City ST" (and ZIP) of a full address is dropped: the street line is compared.

    "12 Oak Street Apt 4", "12 Oak St., #4" and "12 oak st apt. 4" all give "12 oak st unit 4".
    """
    text = value if value.isascii() else unidecode(value)
    return _canonical_tokens(_street_line(text))
