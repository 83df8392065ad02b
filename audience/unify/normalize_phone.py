"""Phone-number normalisation for matching (E.164 via ``phonenumbers``)."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

__all__ = ["normalize_phone"]

# An extension at the end: "ext 12", "ext. 12", "extension 12", "x12", "#12".
_EXTENSION_RE = re.compile(r"(?:(?<![a-z])(?:extension|ext|x)\.?|#)\s*:?\s*\d+\s*$", re.IGNORECASE)
_NOT_DIGIT_OR_PLUS_RE = re.compile(r"[^\d+]")
_NANP_REGIONS = frozenset({"US", "CA"})


@lru_cache(maxsize=65536)
def normalize_phone(value: str, default_region: str = "US") -> str:
    """Normalise a phone number to E.164, or to its digits when it cannot be parsed.

    * An extension at the end is ignored ("ext 12", "x12", "#12").
    * A leading "+" or "00" marks an international number, and zeros right after it are
      dropped, so "+01 555 123 4567" == "+1 555 123 4567" == "001 555 123 4567".
    * Otherwise the number is national to ``default_region`` (an ISO country code):
      with "US", "(555) 123-4567" == "+1 555 123 4567", but "+44 555 123 4567" differs.
    * The number is parsed with ``phonenumbers``; when it is a possible number (right
      length for its country) the result is E.164 ("+15551234567"), otherwise the plain
      digits of the value (country code included when one was given), e.g. "1234".
    * No digits at all -> "" (None after :func:`audience.unify.normalize.normalize`).
    """
    text = _EXTENSION_RE.sub("", value.strip())
    compact = _NOT_DIGIT_OR_PLUS_RE.sub("", text)
    if compact.startswith("+"):
        digits = compact.replace("+", "").lstrip("0")
        to_parse = "+" + digits
    elif compact.startswith("00"):
        digits = compact.lstrip("0")
        to_parse = "+" + digits
    else:
        digits = compact.replace("+", "")
        # Plain digits parse faster; text with letters goes as it is, so phonenumbers can
        # read vanity numbers ("1-800-FLOWERS").
        to_parse = text if any(c.isalpha() for c in text) else digits
    if not digits:
        return ""
    # North American numbers are most of the input and need no parser: ten digits, or
    # eleven starting with the country code 1 (phonenumbers costs ~50 us a number).
    if default_region in _NANP_REGIONS or compact.startswith(("+1", "001")):
        national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        if len(national) == 10 and national[0] in "23456789" and national[3] in "23456789":
            if compact.startswith(("+", "00")) and not digits.startswith("1"):
                pass  # an international number from elsewhere: let phonenumbers decide
            else:
                return "+1" + national
    try:
        number = phonenumbers.parse(to_parse, default_region)
    except phonenumbers.NumberParseException:
        return digits
    if not phonenumbers.is_possible_number(number):
        return digits
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
