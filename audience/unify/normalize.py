"""Normalisations applied to values before matching (the data itself is never changed).

The match stage computes the DISTINCT values of a column, hands them here as an Arrow
array, and joins the result back, so :func:`normalize` is vectorised over Arrow arrays.
Steps (see :data:`STEPS`) run in the order given; aliases run last. A value that
normalises to an empty (or blank) string becomes None, so empty values never match.

Step rules, one function each (:data:`STEP_FUNCTIONS`):

* ``numerals``: number words and "3rd" to digits, trailing roman numerals ("Henry III")
  to digits (:func:`~audience.unify.normalize_text.numerals`).
* ``symbols``: apostrophes/periods removed, other punctuation and symbols -> space.
* ``lower``: Unicode case folding.
* ``ascii``: transliteration with unidecode ("José" -> "Jose", "ß" -> "ss").
* ``whitespace``: trim and collapse runs of whitespace.
* ``phone``: E.164 ("+15551234567") or the digits (:mod:`.normalize_phone`).
* ``name`` / ``first_name``: titles, suffixes, "Last, First" order, nicknames
  (:mod:`.normalize_names`).
* ``address``: USPS abbreviations and one unit form (:mod:`.normalize_address`).
* ``organization``: legal forms (cleanco's list), "the", "&" (:func:`organization`).
* ``email``: lower, provider-specific dots and +tags (:func:`email`).
* ``postcode``: no case, spaces or dashes; US ZIP+4 -> ZIP (:func:`postcode`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache, partial

import pyarrow as pa
from cleanco import prepare_default_terms
from rapidfuzz.distance import JaroWinkler, Levenshtein

from audience.unify.normalize_address import normalize_address
from audience.unify.normalize_names import normalize_first_name, normalize_name, same_given_name
from audience.unify.normalize_phone import normalize_phone
from audience.unify.normalize_text import lower, numerals, symbols, to_ascii, whitespace

__all__ = [
    "PRECISION",
    "SIMILARITY_METHODS",
    "STEPS",
    "STEP_FUNCTIONS",
    "build_aliases",
    "check_steps",
    "email",
    "normalize",
    "organization",
    "similarity",
]

STEPS: tuple[str, ...] = (
    "numerals", "symbols", "lower", "ascii", "whitespace", "phone", "name", "first_name",
    "address", "organization", "email", "postcode",
)  # fmt: skip

# Match precision levels: the minimum similarity score a fuzzy condition accepts.
PRECISION: dict[str, float] = {"exact": 1.0, "high": 0.8, "medium": 0.6, "low": 0.3}

# --- organization ----------------------------------------------------------------------

_ORG_JOINERS_RE = re.compile(r"['.]")
_ORG_SPLIT_RE = re.compile(r"[\s,]+")
_ORG_SEPARATORS_RE = re.compile(r"[^0-9a-z]+")


def _org_key(word: str) -> str:
    # How a word is compared with the legal-form terms: no hyphens, "&" read as "and".
    return "and" if word == "&" else word.replace("-", "")


@cache
def _legal_forms() -> tuple[frozenset[tuple[str, ...]], tuple[int, ...]]:
    """cleanco's legal-form terms as word tuples (ASCII, "&" -> "and"), and their sizes."""
    terms = {
        tuple(_org_key(to_ascii(part)) for part in parts) for _, parts in prepare_default_terms()
    }
    return frozenset(terms), tuple(sorted({len(t) for t in terms}, reverse=True))


def organization(value: str) -> str:
    """Normalise a company name.

    ASCII, case fold, apostrophes and periods removed ("S.A." -> "sa"); legal-form words
    at the end are removed repeatedly using cleanco's term list (Inc, Ltd, Limited, LLC,
    GmbH, SA, Corp, Corporation, Co, Company, "& Co"...), always keeping the first word;
    the word "the" is removed anywhere; "&" becomes "and"; other punctuation is a space.
    "Contoso Ltd." == "contoso limited" == "CONTOSO" == "The Contoso Company, Inc.".
    """
    text = _ORG_JOINERS_RE.sub("", to_ascii(value).casefold()).replace("&", " & ")
    words = [w for w in _ORG_SPLIT_RE.split(text) if w]
    keys = [_org_key(w) for w in words]
    terms, sizes = _legal_forms()
    stripped = True
    while stripped:
        stripped = False
        for size in sizes:
            if len(keys) > size and tuple(keys[-size:]) in terms:
                del keys[-size:], words[-size:]
                stripped = True
                break
    kept = [w for w, k in zip(words, keys, strict=True) if k != "the"] or words
    text = " ".join("and" if w == "&" else w for w in kept)
    return " ".join(_ORG_SEPARATORS_RE.sub(" ", text).split())


# --- email -----------------------------------------------------------------------------

# Providers that ignore dots in the local part and a "+tag" (Gmail's documented rule).
_DOTS_AND_TAGS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
# Providers that deliver "name+tag@" to "name@" (sub-addressing) but where dots matter.
_TAGS_ONLY = frozenset(
    {
        "outlook.com", "hotmail.com", "live.com", "icloud.com", "me.com", "mac.com",
        "fastmail.com", "fastmail.fm",
    }
)  # fmt: skip


def email(value: str) -> str | None:
    """Normalise an email address; None when it is not one.

    Trim, lower case, drop a "mailto:" prefix. Invalid (None): no "@", an empty local
    part, whitespace inside, or a domain without a dot (or with an empty label).
    gmail.com/googlemail.com: dots and a "+tag" are removed from the local part and the
    domain becomes gmail.com. outlook.com, hotmail.com, live.com, icloud.com, me.com,
    mac.com, fastmail.com, fastmail.fm: only a "+tag" is removed. Other domains: as is.
    """
    text = value.strip().lower().removeprefix("mailto:")
    local, at, domain = text.rpartition("@")
    if not at or not local or "@" in local or any(c.isspace() for c in text):
        return None
    if "." not in domain or "" in domain.split("."):
        return None
    if domain in _DOTS_AND_TAGS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = _DOTS_AND_TAGS[domain]
    elif domain in _TAGS_ONLY:
        local = local.split("+", 1)[0]
    return f"{local}@{domain}" if local else None


# --- the step table ---------------------------------------------------------------------

# Raw step functions: they may return "" (or blank) where STEP_FUNCTIONS returns None.
_ZIP_PLUS_FOUR_RE = re.compile(r"^(\d{5})[\s-]?\d{4}$")
_POSTCODE_NOISE_RE = re.compile(r"[^0-9a-z]+")


def postcode(value: str) -> str | None:
    """Postal codes: upper/lower case, spaces and dashes ignored ("SW1A 1AA" = "sw1a1aa"); a US
    ZIP+4 keeps its five-digit ZIP ("76591-3010" = "76591"), which is what the other side of a
    match usually has."""
    text = value.strip()
    zip_plus_four = _ZIP_PLUS_FOUR_RE.match(text)
    if zip_plus_four:
        return zip_plus_four.group(1)
    return _POSTCODE_NOISE_RE.sub("", text.lower()) or None


_RAW_STEPS: dict[str, Callable[[str], str | None]] = {
    "numerals": numerals,
    "symbols": symbols,
    "lower": lower,
    "ascii": to_ascii,
    "whitespace": whitespace,
    "phone": normalize_phone,
    "name": normalize_name,
    "first_name": normalize_first_name,
    "address": normalize_address,
    "organization": organization,
    "email": email,
    "postcode": postcode,
}


def _none_if_blank(function: Callable[[str], str | None]) -> Callable[[str], str | None]:
    def step(value: str) -> str | None:
        result = function(value)
        return result if result and not result.isspace() else None

    step.__name__ = step.__qualname__ = function.__name__
    step.__doc__ = function.__doc__
    return step


# One plain function per step, str -> str | None (None for an empty or blank result). The
# "phone" entry assumes default_region "US"; normalize() passes its own region instead.
STEP_FUNCTIONS: dict[str, Callable[[str], str | None]] = {
    name: _none_if_blank(function) for name, function in _RAW_STEPS.items()
}


def check_steps(steps: Sequence[str]) -> None:
    """Raise ValueError naming the first unknown step and listing the valid ones."""
    if isinstance(steps, str):
        raise ValueError(f"steps must be a list of step names, not the string {steps!r}")
    for step in steps:
        if step not in _RAW_STEPS:
            hint = " (aliases are passed with aliases=, not as a step)" if step == "alias" else ""
            raise ValueError(
                f"unknown normalization step {step!r}{hint}; valid steps: {', '.join(STEPS)}"
            )


def _pipeline(steps: Sequence[str], default_region: str) -> list[Callable[[str], str | None]]:
    check_steps(steps)
    return [
        partial(normalize_phone, default_region=default_region)
        if step == "phone"
        else _RAW_STEPS[step]
        for step in steps
    ]


def _apply(value: str, pipeline: list[Callable[[str], str | None]]) -> str | None:
    result: str | None = value
    for function in pipeline:
        if not result:
            return None
        result = function(result)
    return result if result and not result.isspace() else None


def _as_strings(values: pa.Array | pa.ChunkedArray | Sequence[object]) -> list[str | None]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = values.cast(pa.string())
        return values.to_pylist()
    # Plain Python values: numbers become text; float NaN (pandas' missing) is None.
    return [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values
    ]


def normalize(
    values: pa.Array | pa.ChunkedArray | Sequence[str | None],
    steps: Sequence[str],
    *,
    aliases: Mapping[str, str] | None = None,
    default_region: str = "US",
) -> pa.Array:
    """Normalise every value with ``steps`` in order, then map it through ``aliases``.

    ``values`` is an Arrow array (non-string types are cast to string) or a list. The
    result is a ``pa.string()`` array of the same length: None stays None, and a value
    whose normalised form is empty or blank becomes None. ``aliases`` maps an already
    normalised value to its canonical value (build it with :func:`build_aliases` so that
    keys and values went through the same steps). ``default_region`` is the ISO country
    the ``phone`` step assumes for numbers without a country code.
    """
    pipeline = _pipeline(steps, default_region)
    out: list[str | None] = []
    append = out.append
    for value in _as_strings(values):
        result = None if value is None else _apply(value, pipeline)
        if aliases and result is not None:
            result = aliases.get(result, result)
        append(result)
    return pa.array(out, type=pa.string())


def build_aliases(
    pairs: Iterable[tuple[str, str]], steps: Sequence[str], *, default_region: str = "US"
) -> dict[str, str]:
    """Build the ``aliases`` mapping for :func:`normalize` from (value, canonical) pairs.

    Both sides are normalised with ``steps``; pairs where either side normalises to None
    are skipped. Aliases are equalities and chain: (A, B) and (C, A) put A, B and C in one
    group. Every member of a group maps to the canonical of the group's first pair (in
    input order); members equal to it are left out of the mapping.
    """
    pipeline = _pipeline(steps, default_region)
    parent: dict[str, str] = {}
    first: dict[str, tuple[int, str]] = {}  # group root -> (pair index, canonical)

    def find(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for index, (value, canonical) in enumerate(pairs):
        key = None if value is None else _apply(str(value), pipeline)
        target = None if canonical is None else _apply(str(canonical), pipeline)
        if key is None or target is None:
            continue
        parent.setdefault(key, key)
        parent.setdefault(target, target)
        root_key, root_target = find(key), find(target)
        candidates = [(index, target)]
        candidates += [first[r] for r in {root_key, root_target} if r in first]
        parent[root_key] = root_target
        first.pop(root_key, None)
        first[root_target] = min(candidates)
    mapping = {node: first[find(node)][1] for node in parent}
    return {node: canonical for node, canonical in mapping.items() if node != canonical}


# --- similarity -------------------------------------------------------------------------


SIMILARITY_METHODS = ("edit", "jaro_winkler", "name", "date")


def similarity(a: str | None, b: str | None, method: str = "edit") -> float:
    """Similarity of two (normalised) values in [0, 1]; 0.0 when either is None or empty.

    ``edit`` is the modelled system's score: (len - Levenshtein distance) / len, with len
    the length of the longer string ("Jon"/"John" -> 0.75). ``jaro_winkler`` is rapidfuzz's
    Jaro-Winkler similarity (prefix weight 0.1). ``name`` is Jaro-Winkler, but 1.0 for
    given names listed as nicknames of each other ("jack"/"john", "tina"/"christina").
    ``date`` compares YYYY-MM-DD dates: 1.0 equal, 0.9 day and month swapped, 0.8 one of
    year, month or day different (a slip in one part), else 0.0.
    """
    if not a or not b:
        return 0.0
    if method == "edit":
        longest = max(len(a), len(b))
        return (longest - Levenshtein.distance(a, b)) / longest
    if method == "jaro_winkler":
        return JaroWinkler.similarity(a, b)
    if method == "name":
        return 1.0 if same_given_name(a, b) else JaroWinkler.similarity(a, b)
    if method == "date":
        return _date_similarity(a, b)
    valid = ", ".join(repr(m) for m in SIMILARITY_METHODS)
    raise ValueError(f"unknown similarity method {method!r}; valid: {valid}")


def _date_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    x, y = a.split("-"), b.split("-")
    if len(a) != 10 or len(b) != 10 or len(x) != 3 or len(y) != 3:
        return 0.0
    if x[0] == y[0] and x[1] == y[2] and x[2] == y[1]:
        return 0.9
    return 0.8 if sum(p == q for p, q in zip(x, y, strict=True)) == 2 else 0.0
