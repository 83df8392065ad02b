"""Street-address normalisation for matching (USPS Publication 28 abbreviations).

The parse comes from usaddress-scourgify; the word tables (street types, directionals,
unit designators) are scourgify's own ``address_constants``.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from scourgify import address_constants, normalize_address_record
from unidecode import unidecode

__all__ = ["normalize_address"]

# Secondary-unit designators people use interchangeably for the same dwelling or office:
# "Apt 4", "#4", "Unit 4", "Suite 4" and "Room 4" all become "unit 4".
_UNIT_WORDS = frozenset({"apartment", "apt", "unit", "suite", "ste", "room", "rm", "#"})
_UNIT = "unit"
_SCOURGIFY_FIELDS = ("address_line_1", "address_line_2", "city", "state", "postal_code")

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


@lru_cache(maxsize=65536)
def normalize_address(value: str) -> str:
    """Normalise a street address (a line, or a full address) for matching.

    1. ASCII (unidecode).
    2. Parse with scourgify's ``normalize_address_record`` (USPS abbreviations, unit part
       split off); its fields are joined in the order line 1, line 2, city, state, ZIP.
       Values it cannot parse (e.g. "PO Box 12") are used as they are.
    3. Either way the result goes through the same token table, so parsed and unparsed
       values stay comparable: lower case; apostrophes and periods removed; other
       punctuation is a separator; street types (Street -> st, Avenue -> ave, Road -> rd,
       Boulevard -> blvd...), directionals (North -> n) and unit types (Floor -> fl) take
       their USPS abbreviation; Apartment/Apt/Unit/Suite/Ste/Room/Rm/# all become "unit".

    "12 Oak Street Apt 4", "12 Oak St., #4" and "12 oak st apt. 4" all give "12 oak st unit 4".
    """
    text = value if value.isascii() else unidecode(value)
    try:
        record = normalize_address_record(text)
    except Exception:  # scourgify and usaddress raise several unrelated exception types
        return _canonical_tokens(text)
    parsed = " ".join(str(record[f]) for f in _SCOURGIFY_FIELDS if record.get(f))
    return _canonical_tokens(parsed or text)
