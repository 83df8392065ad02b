"""Address enrichment: postal addresses in USPS standard form, one value at a time.

The stage calls `standardize_address` on the DISTINCT (street line, city, region, postal
code) tuples of the profile and joins the results back in the engine, so an address shared
by a household is parsed once.

Street lines are tagged by `usaddress` (a CRF tagger) and written with USPS Publication 28
abbreviations from usaddress-scourgify's tables, the tables unify's `address` normalisation
is built from. Neither of the existing helpers fits as it is: scourgify's own normaliser
writes everything in capitals and rejects partial addresses, and unify's
`normalize_address` makes a lower-case matching key in which every word is abbreviated
("hill rd") and every unit type is "unit". Here the name keeps its words ("Hill Rd",
"Apt 4"). A plain line ("123 N Elm St Apt 4") is read by a regular expression instead of
the tagger, three times faster in all; a test checks both give the same result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import usaddress
from scourgify import address_constants
from unidecode import unidecode

# Each distinct address is seen once per stage; the cache serves repeats across runs in
# one process (the API, tests) and stays bounded.
_CACHE = 65536


@dataclass(frozen=True)
class StandardAddress:
    street: str | None  # "N Main St" (directionals, name, type) or "PO Box 12"
    number: str | None  # "123", "221B", "123 1/2"
    unit: str | None  # "Apt 4", "Ste 200", "# 13"
    city: str | None
    region: str | None  # two-letter state code when known
    postal_code: str | None  # "62704" or "62704-1234"
    standard: str | None  # "123 N Main St Apt 4, Springfield, IL 62704"
    parsed: bool
    reason: str | None = None  # why the street line could not be parsed

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Street": self.street,
            "Number": self.number,
            "Unit": self.unit,
            "City": self.city,
            "Region": self.region,
            "PostalCode": self.postal_code,
            "Standard": self.standard,
            "Parsed": self.parsed,
        }
        if self.reason:
            out["Reason"] = self.reason
        return out


# Territories by name: scourgify's state table has the 50 states and DC only. Two-letter
# codes (territories, military AA/AE/AP) are taken as they are written.
_TERRITORIES = {
    "PUERTO RICO": "PR", "GUAM": "GU", "VIRGIN ISLANDS": "VI", "US VIRGIN ISLANDS": "VI",
    "AMERICAN SAMOA": "AS", "NORTHERN MARIANA ISLANDS": "MP", "MARSHALL ISLANDS": "MH",
    "FEDERATED STATES OF MICRONESIA": "FM", "MICRONESIA": "FM", "PALAU": "PW",
}  # fmt: skip
_NOT_WORD_RE = re.compile(r"[^A-Z0-9 ]+")
_SPACES_RE = re.compile(r"\s+")


@cache
def _abbreviations() -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
    """Upper-case word -> USPS abbreviation: street types, directionals, unit types, states."""
    street_types = dict(address_constants.STREET_TYPE_ABBREVIATIONS)
    directionals = dict(address_constants.DIRECTIONAL_REPLACEMENTS)
    directionals.update({v: v for v in address_constants.DIRECTIONAL_REPLACEMENTS.values()})
    units = dict(address_constants.OCCUPANCY_TYPE_ABBREVIATIONS)
    units.update({v: v for v in address_constants.OCCUPANCY_TYPE_ABBREVIATIONS.values()})
    units.update({"APT": "APT", "STE": "STE", "NO": "#", "NUMBER": "#"})
    states = dict(address_constants.STATE_ABBREVIATIONS)
    states.update(_TERRITORIES)
    return street_types, directionals, units, states


def _key(text: str) -> str:
    # "Blvd." -> "BLVD", "P.O." -> "PO": how a word is looked up in the USPS tables.
    return _SPACES_RE.sub(" ", _NOT_WORD_RE.sub("", text.upper().replace(".", ""))).strip()


def _word_case(word: str) -> str:
    """Names in title case when written all upper or all lower ("MAIN" -> "Main",
    "o'neil" -> "O'Neil", "winston-salem" -> "Winston-Salem"); mixed case is kept as the
    person wrote it ("McDonald"); words starting with a digit stay as they are ("1st")."""
    if not word or word[0].isdigit() or not (word.isupper() or word.islower()):
        return word
    out = word.lower()
    out = "-".join(part[:1].upper() + part[1:] for part in out.split("-"))
    if len(out) > 2 and out[1] == "'":
        out = out[:2] + out[2].upper() + out[3:]
    return out


def _name_case(text: str | None) -> str | None:
    if not text:
        return None
    return " ".join(_word_case(w) for w in text.split())


def _abbreviate(text: str | None, table: dict[str, str], upper: bool = False) -> str | None:
    """A street type, directional or unit word in its USPS abbreviation ("Street" -> "St",
    "North" -> "N"); a word not in the table is written in name case."""
    if not text:
        return None
    found = table.get(_key(text))
    if found is None:
        return _name_case(text)
    return found if upper else found.title()


def standard_region(value: str | None) -> str | None:
    """Two-letter state or territory code ("Illinois", "ill.", "il" -> "IL"); other text in
    name case."""
    if not value or not value.strip():
        return None
    key = _key(unidecode(value))
    if len(key) == 2 and key.isalpha():
        return key
    return _abbreviations()[3].get(key) or _name_case(value.strip())


_ZIP_RE = re.compile(r"^(\d{5})(?:[\s-]?(\d{4}))?$")


def standard_postal_code(value: str | None, country: str = "US") -> str | None:
    """US ZIP codes as "62704" or "62704-1234"; a ZIP whose leading zeros were lost when a
    spreadsheet read it as a number ("2110") gets them back. Other countries: upper case,
    single spaces."""
    if value is None or not str(value).strip():
        return None
    text = " ".join(str(value).upper().split())
    if country.upper() != "US":
        return text
    if text.isdigit() and 3 <= len(text) <= 4:
        text = text.zfill(5)
    match = _ZIP_RE.match(text)
    if match is None:
        return text
    return match.group(1) + (f"-{match.group(2)}" if match.group(2) else "")


def _join(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None


def _unit(kind: str | None, identifier: str | None) -> str | None:
    """ "Apartment", "4" -> "Apt 4"; "#13" -> "# 13" (USPS writes the pound sign alone when the
    unit type is unknown); "Rear" -> "Rear"."""
    ident = identifier.replace("#", " ").strip().upper() if identifier else None
    ident = ident.lstrip("-").strip() if ident else None
    if not kind:
        return f"# {ident}" if ident else None
    designator = _abbreviate(kind, _abbreviations()[2])
    return _join(designator, ident)


# usaddress's kinds of text that are not one street address.
_REASONS = {
    "Intersection": "an intersection, not a street address",
    "Ambiguous": "not recognisable as a street address",
}


@lru_cache(maxsize=_CACHE)
def standardize_address(
    line: str | None,
    city: str | None = None,
    region: str | None = None,
    postal_code: str | None = None,
    country: str = "US",
) -> StandardAddress:
    """One postal address in USPS standard form.

    `line` is the street line (or a whole address: a city, state and ZIP found in it fill
    the parts not given separately). "123 North Main Street Apartment 4" -> number "123",
    street "N Main St", unit "Apt 4". Only the parts usaddress tags as directionals, street
    types and unit types are abbreviated: the name itself keeps its words ("Park Hill Road"
    -> "Park Hill Rd", where unify's matching key has "park hl rd").
    A line usaddress cannot read as one street address (an intersection, two house numbers,
    no house number) gives `parsed=False` and the reason; the city, region and postal code
    are still standardised. Only US addresses are parsed: with another country the street
    line is reported as not parsed.
    """
    city_out = _name_case(unidecode(city).strip()) if city else None
    region_out = standard_region(region)
    postal_out = standard_postal_code(postal_code, country)

    def failed(reason: str) -> StandardAddress:
        standard = _join_standard(None, city_out, region_out, postal_out)
        return StandardAddress(
            None, None, None, city_out, region_out, postal_out, standard, False, reason
        )

    text = " ".join(unidecode(line).split()) if line else ""
    if not text:
        return failed("no street line")
    if country.upper() != "US":
        return failed(f"only US addresses are parsed (country {country})")
    found = _simple_line(text)
    try:
        tags, kind = found if found else usaddress.tag(text)
    except usaddress.RepeatedLabelError as e:
        return failed(f"ambiguous: two {_label_words(_repeated_label(e.parsed_string))} parts")
    if kind in _REASONS:
        return failed(_REASONS[kind])
    street_types, directionals, _units, _states = _abbreviations()
    city_out = city_out or _name_case(tags.get("PlaceName"))
    region_out = region_out or standard_region(tags.get("StateName"))
    postal_out = postal_out or standard_postal_code(tags.get("ZipCode"), country)
    unit = _join(
        _unit(tags.get("SubaddressType"), tags.get("SubaddressIdentifier"))
        if tags.get("SubaddressType") or tags.get("SubaddressIdentifier")
        else None,
        _unit(tags.get("OccupancyType"), tags.get("OccupancyIdentifier"))
        if tags.get("OccupancyType") or tags.get("OccupancyIdentifier")
        else None,
    )
    if kind == "PO Box" or tags.get("USPSBoxID"):
        box = _join(
            _key(tags.get("USPSBoxGroupType", "")) or None,
            tags.get("USPSBoxGroupID"),
            "PO Box" if "P" in _key(tags.get("USPSBoxType", "")) else "Box",
            tags.get("USPSBoxID"),
        )
        return _address(box, None, unit, city_out, region_out, postal_out)
    number = _join(
        tags.get("AddressNumberPrefix"), tags.get("AddressNumber"), tags.get("AddressNumberSuffix")
    )
    if not number:
        return failed("no house number")
    if not tags.get("StreetName"):
        return failed("no street name")
    street = _join(
        _name_case(tags.get("StreetNamePreModifier")),
        _abbreviate(tags.get("StreetNamePreDirectional"), directionals, upper=True),
        _abbreviate(tags.get("StreetNamePreType"), street_types),
        _name_case(tags.get("StreetName")),
        _abbreviate(tags.get("StreetNamePostType"), street_types),
        _abbreviate(tags.get("StreetNamePostDirectional"), directionals, upper=True),
        _name_case(tags.get("StreetNamePostModifier")),
    )
    return _address(street, number.upper(), unit, city_out, region_out, postal_out)


# The common street line "123 [N] Elm Tree St [SW] [Apt 4 | #4]", read without usaddress
# (its tagger costs ~60 us a line, this expression a few). The directional, type and unit
# slots accept only USPS words, and a name word may not be a directional or unit word, so
# anything else ("12 Avenue B", "PO Box 5", "Main St & 5th Ave") goes to usaddress; a test
# checks that both paths agree on the demo's addresses.
@cache
def _simple_re() -> re.Pattern[str]:
    street_types, directionals, units, _states = _abbreviations()

    def words(table: dict[str, str]) -> str:
        # Longest first, so "NORTHEAST" is not read as "NORTH" + "EAST".
        return "|".join(sorted((re.escape(w) for w in table if w.isalpha()), key=len)[::-1])

    word = r"(?:[A-Za-z][A-Za-z']*|\d+(?:st|nd|rd|th))"
    return re.compile(
        rf"^(?P<number>\d+[A-Z]?)\s+(?:(?P<pre>{words(directionals)})\.?\s+)?"
        rf"(?P<name>{word}(?:\s+{word}){{0,2}})\s+(?P<type>{words(street_types)})\.?"
        rf"(?:\s+(?P<post>{words(directionals)})\.?)?"
        rf"(?:,?\s+(?:(?P<unit>{words(units)})\.?\s*#?|#)\s*(?P<id>[A-Z0-9-]*\d[A-Z0-9-]*))?$",
        re.IGNORECASE,
    )


def _simple_line(text: str) -> tuple[dict[str, str], str] | None:
    """usaddress-style tags of a plain street line, or None when it is not one."""
    match = _simple_re().match(text)
    if match is None:
        return None
    _types, directionals, units, _states = _abbreviations()
    parts = match.groupdict()
    if any(_key(w) in directionals or _key(w) in units for w in parts["name"].split()):
        return None
    labels = {
        "number": "AddressNumber",
        "pre": "StreetNamePreDirectional",
        "name": "StreetName",
        "type": "StreetNamePostType",
        "post": "StreetNamePostDirectional",
        "unit": "OccupancyType",
        "id": "OccupancyIdentifier",
    }
    return {labels[k]: v for k, v in parts.items() if v}, "Street Address"


def _address(
    street: str | None,
    number: str | None,
    unit: str | None,
    city: str | None,
    region: str | None,
    postal: str | None,
) -> StandardAddress:
    line = _join(number, street, unit)
    return StandardAddress(
        street, number, unit, city, region, postal, _join_standard(line, city, region, postal),
        True,
    )  # fmt: skip


def _join_standard(
    line: str | None, city: str | None, region: str | None, postal: str | None
) -> str | None:
    text = ", ".join(p for p in (line, city, _join(region, postal)) if p)
    return text or None


def _repeated_label(tokens: list[tuple[str, str]]) -> str:
    """The first label usaddress found in two places ("Apt 4 Apt 5": OccupancyType)."""
    seen: set[str] = set()
    previous = None
    for _token, label in tokens:
        if label != previous and label in seen:
            return label
        seen.add(label)
        previous = label
    return "address"


def _label_words(label: str) -> str:
    # "StreetNamePostType" -> "street name post type"
    return re.sub(r"(?<!^)(?=[A-Z])", " ", label).lower()
