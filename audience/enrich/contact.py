"""Phone and e-mail enrichments, one value at a time (addresses: `address.py`).

Each function here takes one raw value and returns what the enrichment publishes about it
(the profile fields and the `Values` JSON of the Enrichment table). The stage calls them on
the DISTINCT values of the profile (see `audience/enrich/stage.py`), so a value shared by many
customers is parsed once, and the results are joined back in the engine.

- phone: E.164 through unify's `normalize_phone` (so `phone_e164` is the value unify matches
  on), then type, region and validity from `phonenumbers`' full metadata.
- email: `email_validator` syntax rules (no DNS or network look-up), lower case, domain,
  role accounts (info@, sales@) and unify's matching key (Gmail dots and +tags removed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from audience.unify.normalize import email as email_match_key
from audience.unify.normalize_phone import normalize_phone

# The cached functions below see each distinct value once per stage; the cache only helps
# tests and repeated values across enrichments, so it is kept small.
_CACHE = 65536


def values_json(values: dict[str, Any]) -> str:
    """The `Values` text of the Enrichment table: compact JSON, keys in the given order."""
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


# --- phone ---------------------------------------------------------------------------------

_PHONE_TYPES = {
    value: name.lower()
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}
_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local number without area code",
}


@dataclass(frozen=True)
class PhoneInfo:
    e164: str | None  # only for valid numbers: what an SMS or call export can use
    type: str | None  # mobile, fixed_line, fixed_line_or_mobile, toll_free, voip, ...
    region: str | None  # ISO region of the number ("US", "GB")
    valid: bool
    reason: str | None = None

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "E164": self.e164,
            "Type": self.type,
            "Region": self.region,
            "Valid": self.valid,
        }
        if self.reason:
            out["Reason"] = self.reason
        return out


@lru_cache(maxsize=_CACHE)
def phone_info(value: str | None, default_region: str = "US") -> PhoneInfo | None:
    """A phone number in E.164 with its type and region; None for an empty value.

    Extensions are ignored ("(503) 877-2747 ext. 12" -> "+15038772747"); numbers without a
    country code belong to `default_region`. The E.164 text is unify's `phone` key, so a
    valid number here is exactly what matching compared. Invalid numbers (wrong length,
    unassigned area code, letters only) have `valid=False`, no E.164, and the reason.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value)
    key = normalize_phone(text, default_region)
    if not key:
        return PhoneInfo(None, None, None, False, "no digits")
    if not key.startswith("+"):
        return PhoneInfo(None, None, None, False, _why_impossible(text, default_region))
    number = phonenumbers.parse(key)
    region = phonenumbers.region_code_for_number(number)
    # number_type is UNKNOWN exactly when is_valid_number is false (both test the number
    # against its region's patterns): one metadata pass instead of two.
    kind = phonenumbers.number_type(number)
    if region is None or kind == phonenumbers.PhoneNumberType.UNKNOWN:
        possible = phonenumbers.is_possible_number_with_reason(number)
        reason = _POSSIBLE_REASONS.get(possible)
        if reason is None:  # the right length, but no such number (an unassigned area code)
            reason = f"not a valid number in {region or f'+{number.country_code}'}"
        return PhoneInfo(None, None, region, False, reason)
    return PhoneInfo(key, _PHONE_TYPES.get(kind, "unknown"), region, True)


def _why_impossible(text: str, default_region: str) -> str:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as e:
        return _PARSE_REASONS.get(e.error_type, "not a phone number")
    reason = phonenumbers.is_possible_number_with_reason(number)
    return _POSSIBLE_REASONS.get(reason, "not a possible number")


# --- email ---------------------------------------------------------------------------------

# Local parts of shared mailboxes (compared without dots, dashes and underscores): a person
# rarely reads them, so campaigns usually leave them out.
ROLE_ACCOUNTS = frozenset(
    {
        "abuse", "accounting", "accounts", "admin", "administrator", "billing", "careers",
        "contact", "contactus", "customercare", "customerservice", "customersupport",
        "donotreply", "enquiries", "enquiry", "feedback", "finance", "hello", "help",
        "helpdesk", "hostmaster", "hr", "info", "inquiries", "inquiry", "invoices", "it",
        "jobs", "legal", "mail", "marketing", "media", "newsletter", "noc", "noreply",
        "office", "orders", "postmaster", "press", "privacy", "recruiting", "reservations",
        "root", "sales", "security", "service", "support", "team", "webmaster",
    }
)  # fmt: skip
_ROLE_NOISE_RE = re.compile(r"[._\-]")


@dataclass(frozen=True)
class EmailInfo:
    normalized: str | None  # lower case, Unicode domain; None when invalid
    domain: str | None
    match_key: str | None  # unify's email key (Gmail dots and +tags removed)
    role_account: bool | None
    valid: bool
    reason: str | None = None

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Normalized": self.normalized,
            "Domain": self.domain,
            "MatchKey": self.match_key,
            "RoleAccount": self.role_account,
            "Valid": self.valid,
        }
        if self.reason:
            out["Reason"] = self.reason
        return out


def is_role_account(local_part: str) -> bool:
    """info@, sales@, no-reply@, support+eu@ ... (the local part before a +tag)."""
    base = local_part.lower().split("+", 1)[0]
    return _ROLE_NOISE_RE.sub("", base) in ROLE_ACCOUNTS


@lru_cache(maxsize=_CACHE)
def email_info(value: str | None) -> EmailInfo | None:
    """An e-mail address checked for syntax (no DNS or network look-up) and normalised;
    None for an empty value.

    Normalised: trimmed, a "mailto:" prefix dropped, lower case throughout (the standard lets
    the local part be case-sensitive, but mail systems do not treat it so, and one spelling
    per address is what exports and matching need). Invalid addresses (no @, two dots in a
    row, spaces, a reserved domain such as .test or .local) keep `valid=False` and
    email_validator's reason.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as e:
        return EmailInfo(None, None, None, None, False, str(e))
    normalized = checked.normalized.lower()
    return EmailInfo(
        normalized,
        checked.domain.lower(),
        email_match_key(normalized),
        is_role_account(checked.local_part),
        True,
    )
