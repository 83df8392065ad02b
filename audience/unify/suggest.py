"""`audience suggest`: propose the semantic type of each column, and say how sure.

Two signals per (column, type). N, the column NAME: split (camelCase, snake_case, digits
dropped), filler words ("cust", "home") ignored, compared with :data:`SYNONYMS`: an exact
synonym 1.0; a synonym inside the name 0.55 + 0.35 x the share of the name it covers; a fuzzy
match (rapidfuzz ratio >= 85%) 0.75 x ratio. V, the VALUES: the share of sampled values that
pass the type's test (:data:`TESTS`), weighted by w, how much a passing test alone proves the
type (an e-mail regex a lot, "a word without digits" little):

    confidence = [1 - (1 - 0.7 N)(1 - w V)] x min(1, 0.25 + V)

Either signal can carry a column (a noisy OR: `code` full of e-mails; `city` of place-like
words); values that contradict the name pull it down (`email` with 5% e-mails). A column
without values is judged by name alone: 0.7 N. Within a table a type goes to its most
confident column only. A None suggestion's confidence is 1 - the best type's confidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import phonenumbers
import pyarrow as pa
import pyarrow.types as pat
from cleanco import prepare_default_terms
from rapidfuzz import fuzz
from scourgify.address_constants import STATE_ABBREVIATIONS, STREET_TYPE_ABBREVIATIONS
from unidecode import unidecode

from audience.project import Project

if TYPE_CHECKING:
    from audience.engine import Engine

SAMPLE_SIZE = 1000
MIN_CONFIDENCE = 0.6  # what as_yaml_fields keeps by default
MIN_GUESS = 0.3  # below this a column gets None: no type fits at all

# Snake-case synonyms per type (compared without underscores, so e_mail == email). A few
# German, French and Spanish words are included for exports from those systems.
SYNONYMS: dict[str, list[str]] = {
    t: s.split()
    for t, s in {
        "Identity.Email": "email e_mail mail email_address mail_address emailaddress courriel "
        "correo correo_electronico adresse_mail",
        "Identity.Phone": "phone tel telephone mobile cell cellphone phone_number mobile_number "
        "telefon telefonnummer handy telefono movil portable",
        "Person.FirstName": "first_name firstname given_name forename fname vorname prenom nombre",
        "Person.MiddleName": "middle_name middlename middle_initial mname",
        "Person.LastName": "last_name lastname surname family_name lname nachname familienname "
        "nom nom_de_famille apellido apellidos",
        "Person.FullName": "name full_name fullname customer_name contact_name person_name "
        "display_name nom_complet nombre_completo",
        "Person.BirthDate": "birth_date birthdate birthday dob date_of_birth born geburtsdatum "
        "geburtstag date_naissance date_de_naissance fecha_nacimiento fecha_de_nacimiento",
        "Person.Gender": "gender sex geschlecht sexe genero",
        "Person.Title": "title salutation honorific anrede civilite tratamiento",
        "Location.Address": "street address address_line address1 addr street_address "
        "strasse adresse rue direccion calle",
        "Location.City": "city town locality stadt ort ville ciudad",
        "Location.State": "state region province county bundesland estado provincia",
        "Location.PostalCode": "zip zipcode zip_code postcode postal_code postalcode plz "
        "postleitzahl code_postal codigo_postal",
        "Location.Country": "country country_code nation land pays pais",
        "Organization.Name": "company company_name organisation organization org employer "
        "account_name firm firma unternehmen entreprise societe empresa",
        "Identity.CustomerNumber": "customer_number customer_no customer_nr cust_no "
        "client_number client_no kundennummer kundennr numero_client",
    }.items()
}


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that qualify a column without changing what it holds: cust_tel_2 is a phone.
_FILLER = _set("cust customer client contact primary main home work personal private business")
_KEY_WORDS = _set("id key uuid guid pk")
_NUMBER_WORDS = _set("no nr num number")  # keys only if nothing else fits
# What may be glued to a synonym in a name ("customeremail", "emailaddr"), but not "hotel".
_QUALIFIERS = (
    _FILLER
    | _NUMBER_WORDS
    | _set("line code text value")
    | {s.replace("_", "") for group in SYNONYMS.values() for s in group}
)


@dataclass
class Suggestion:
    table: str  # 'source.table'
    column: str
    semantic: str | None  # e.g. 'Identity.Email', or None when nothing fits
    confidence: float  # 0..1
    reasons: list[str] = field(default_factory=list)


# --- value tests -------------------------------------------------------------------------
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.I)
_EXTENSION_RE = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*\d+$", re.I)
_PHONE_CHARS_RE = re.compile(r"^\+?[\d\s().\-/]+$")
_DATE_TEXT_RE = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}$|^\d{1,2}[./-]\d{1,2}[./-]\d{4}$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}")
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y")
_POSTAL_RE = re.compile(
    r"^\d{5}(-\d{4})?$"  # US, DE, FR, ES, IT
    r"|^[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}$"  # UK
    r"|^[A-Z]\d[A-Z]\s?\d[A-Z]\d$"  # CA
    r"|^\d{4}\s?[A-Z]{2}$",  # NL
    re.I,
)
_WORDS_RE = re.compile(r"^[^\W\d_]+\.?(?:[ '\-]+[^\W\d_]+\.?){0,3}$")  # letters, <= 4 words
_NAME_WORD_RE = re.compile(r"^[^\W\d_]+(?:['\-.][^\W\d_]+)*\.?$")
_ID_RE = re.compile(r"^[A-Za-z]{0,4}[-_]?[\dA-Fa-f]*\d[\dA-Fa-f\-]{2,}$")
_INITIAL_RE = re.compile(r"^[A-Z]\.?$")
_GERMAN_STREET_RE = re.compile(r"(stra(ss|ß)e|str\.|weg|platz|gasse|allee|ring)\s*\d+", re.I)
_GENDERS = _set(
    "m f w d x u male female man woman other unknown diverse nonbinary non-binary "
    "männlich weiblich divers homme femme hombre mujer masculino femenino"
)
_TITLES = _set("mr mrs ms miss mx dr prof sir dame rev herr frau mme mlle sra srta")
_SUFFIXES = _set("jr sr ii iii iv phd md esq")
_ORG_WORDS = _set(
    "company group holdings corporation partners associates industries solutions services "
    "sons bank university foundation enterprises international systems technologies"
)


@cache
def _vocab() -> dict[str, frozenset[str]]:
    """Word lists from the matching libraries, loaded once."""
    from faker.providers.address.en import Provider as Places
    from faker.providers.person.en_US import Provider as People
    from nicknames import NickNamer

    # nicknames' names plus Faker's US list (SSA data) cover the common given names.
    namer = NickNamer()
    given = {*namer.nickname_lookup, *namer.canonical_lookup, *map(str.lower, People.first_names)}
    countries = {c.lower() for c in [*Places.countries, *phonenumbers.SUPPORTED_REGIONS]}
    countries |= {"usa", "uk", "gbr", "deu", "fra", "united states", "england", "deutschland"}
    return {
        "given": frozenset(given),
        "street": frozenset(w.lower() for kv in STREET_TYPE_ABBREVIATIONS.items() for w in kv),
        # US states from scourgify, and the Canadian provinces.
        "state": frozenset(w.lower() for kv in STATE_ABBREVIATIONS.items() for w in kv)
        | _set("ab bc mb nb nl ns on pe qc sk nt nu yt"),
        "country": frozenset(countries),
        "legal": frozenset(" ".join(parts) for _, parts in prepare_default_terms()),
    }


def _key(value: str) -> str:
    return unidecode(value).lower().strip().strip(".")


def _is_phone(value: str) -> bool:
    text = _EXTENSION_RE.sub("", value.strip())
    if not _PHONE_CHARS_RE.match(text) or _DATE_TEXT_RE.match(text):
        return False
    digits = sum(c.isdigit() for c in text)
    if not 7 <= digits <= 15:
        return False
    try:
        if phonenumbers.is_possible_number(phonenumbers.parse(text, "US")):
            return True
    except phonenumbers.NumberParseException:
        pass
    return digits >= 10 and text.startswith(("+", "00"))  # international, any region


def _is_birth_date(value: Any) -> bool:
    for fmt in _DATE_FORMATS if isinstance(value, str) else ():
        try:
            value = datetime.strptime(value.strip(), fmt).date()
            break
        except ValueError:
            continue
    if isinstance(value, datetime):
        value = value.date()
    today = date.today()
    return isinstance(value, date) and date(1900, 1, 1) <= value <= date(today.year - 10, 1, 1)


def _is_first_name(value: str) -> bool:
    parts = re.split(r"[\s\-]+", _key(value))
    return 1 <= len(parts) <= 2 and parts[0] in _vocab()["given"]


def _is_full_name(value: str) -> bool:
    last, comma, first = value.partition(",")  # "Smith, Ann" is Ann Smith
    words = [w for w in (first + " " + last if comma else value).split() if _key(w)]
    words = [w for w in words if _key(w) not in _TITLES | _SUFFIXES]
    return (
        2 <= len(words) <= 3
        and all(_NAME_WORD_RE.match(w) for w in words)
        and _key(words[0]) in _vocab()["given"]
    )


def _is_address(value: str) -> bool:
    if _GERMAN_STREET_RE.search(value) or re.match(r"^p\.?\s?o\.?\s?box\b", value, re.I):
        return True
    words = re.findall(r"[a-z]+", _key(value))
    starts_with_number = re.match(r"^\d+[a-z]?\s+\S", value.strip(), re.I)
    return bool(starts_with_number) and any(w in _vocab()["street"] for w in words[1:] or words)


def _is_org(value: str) -> bool:
    words = re.sub(r"[.,]", "", _key(value)).replace("&", " & ").split()
    legal = _vocab()["legal"]
    return len(words) >= 2 and (
        any(" ".join(words[-n:]) in legal for n in (1, 2, 3)) or bool(_ORG_WORDS & set(words))
    )


# type -> (w: how much a passing value test alone proves the type, test, what passes).
TESTS: dict[str, tuple[float, Callable[[Any], Any], str]] = {
    "Identity.Email": (1.0, _EMAIL_RE.match, "e-mail addresses"),
    "Identity.Phone": (0.8, _is_phone, "phone numbers"),
    "Person.BirthDate": (0.7, _is_birth_date, "dates in a plausible birth range"),
    "Location.PostalCode": (0.6, _POSTAL_RE.match, "postal codes (US, UK, CA, DE...)"),
    "Person.FirstName": (0.7, _is_first_name, "common given names"),
    "Person.FullName": (0.7, _is_full_name, "names of 2-3 words with a given name"),
    "Person.MiddleName": (
        0.3,
        lambda v: _is_first_name(v) or _INITIAL_RE.match(v),
        "given names or initials",
    ),
    "Person.LastName": (0.25, _WORDS_RE.match, "name-like words"),
    "Location.City": (0.2, _WORDS_RE.match, "place-like words without digits"),
    "Location.State": (0.8, lambda v: _key(v) in _vocab()["state"], "US states or provinces"),
    "Location.Country": (0.7, lambda v: _key(v) in _vocab()["country"], "countries"),
    "Location.Address": (0.9, _is_address, "street lines (number + street type)"),
    "Organization.Name": (0.85, _is_org, "company names (Inc, LLC, GmbH, Group...)"),
    "Person.Gender": (0.9, lambda v: _key(v) in _GENDERS, "gender values (m/f/male/female...)"),
    "Person.Title": (0.8, lambda v: _key(v) in _TITLES, "titles (Mr, Mrs, Dr...)"),
    "Identity.CustomerNumber": (0.1, _ID_RE.match, "ID-like codes"),
}
# Gender and title columns hold a handful of distinct values; a column with many distinct
# values that happen to be single letters is something else.
_MAX_DISTINCT = {"Person.Gender": 10, "Person.Title": 20}
_TIMESTAMPS = "timestamps (times of events, not customer data)"
_INT_TYPES = ("Identity.Phone", "Location.PostalCode", "Identity.CustomerNumber")


def _share(test: Callable[[Any], Any], values: list[Any]) -> float:
    return sum(bool(test(v)) for v in values) / len(values)


# --- names -------------------------------------------------------------------------------
def name_tokens(name: str) -> list[str]:
    """'EMailAddr' -> ['e', 'mail', 'addr']; 'cust_tel_2' -> ['cust', 'tel']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return re.findall(r"[a-z]+", unidecode(spaced).lower())


def _glued(joined: str, synonym: str) -> bool:
    # "customeremail" holds "email" glued to a known word; "hotelname" does not hold "lname".
    if len(synonym) < 4 or joined == synonym:
        return False
    rest = joined.removeprefix(synonym) if joined.startswith(synonym) else None
    if rest is None and joined.endswith(synonym):
        rest = joined.removesuffix(synonym)
    return rest in _QUALIFIERS


def _name_scores(tokens: list[str]) -> dict[str, tuple[float, str]]:
    """type -> (N, reason) for every type the name points at."""
    forms = [tokens, [t for t in tokens if t not in _FILLER]]
    scores: dict[str, tuple[float, str]] = {}
    for semantic, synonyms in SYNONYMS.items():
        best = (0.0, "")
        for form in filter(None, forms):
            joined, spaced = "".join(form), f" {' '.join(form)} "
            for synonym in synonyms:
                s = synonym.replace("_", "")
                if joined == s:
                    score, reason = 1.0, f"name matches '{synonym}'"
                elif f" {synonym.replace('_', ' ')} " in spaced or _glued(joined, s):
                    score, reason = 0.55 + 0.35 * len(s) / len(joined), f"name has '{synonym}'"
                elif len(s) >= 5 and (ratio := fuzz.ratio(joined, s) / 100) >= 0.85:
                    score, reason = 0.75 * ratio, f"name resembles '{synonym}' ({ratio:.0%})"
                else:
                    continue
                best = max(best, (score, reason), key=lambda x: x[0])
        if best[0]:
            scores[semantic] = best
    return scores


# --- one column --------------------------------------------------------------------------
def _values(array: pa.Array | pa.ChunkedArray) -> tuple[str, list[Any]]:
    """(kind, non-empty sample values): kind is string, int, date or why the column is skipped."""
    kind = array.type.value_type if pat.is_dictionary(array.type) else array.type
    kind = pa.string() if kind == pa.string_view() else kind  # Arrow filters no string_view
    values = array.cast(kind).drop_null().slice(0, SAMPLE_SIZE).to_pylist()
    if pat.is_null(kind) or pat.is_string(kind) or pat.is_large_string(kind):
        return "string", [v.strip() for v in values if v.strip()]  # all-null: judged by name
    if pat.is_integer(kind):  # integer postal codes lost their leading zeros: 2134 was 02134
        return "int", [f"{v:05d}" if 1000 <= v < 10000 else str(v) for v in values]
    if pat.is_date(kind):
        return "date", values
    if pat.is_timestamp(kind) or pat.is_time(kind):
        return _TIMESTAMPS, []
    numbers = pat.is_floating(kind) or pat.is_decimal(kind)
    what = "true/false flags" if pat.is_boolean(kind) else f"{kind} values"
    return f"{'numbers (amounts, scores)' if numbers else what}, not customer data", []


def _candidates(tokens: list[str], kind: str, values: list[Any]) -> list[tuple[float, str, list]]:
    """(confidence, type, reasons) for every type worth naming, best first."""
    names = _name_scores(tokens)
    allowed = {"string": TESTS, "int": _INT_TYPES, "date": ("Person.BirthDate",)}[kind]
    out = []
    for semantic in allowed:
        n, name_reason = names.get(semantic, (0.0, ""))
        if kind == "int" and not n:
            continue  # plain numbers are postal codes or phones only when the name says so
        reasons = [name_reason] if name_reason else []
        if not values:
            out.append((0.7 * n, semantic, [*reasons, "no values to check"]))
            continue
        w, test, what = TESTS[semantic]
        few = len(set(values)) <= _MAX_DISTINCT.get(semantic, len(values))
        v = _share(test, values) if few else 0.0
        confidence = (1 - (1 - 0.7 * n) * (1 - w * v)) * min(1.0, 0.25 + v)
        if v >= 0.5 or n:
            reasons.append(f"{v:.0%} of {len(values)} sampled values are {what}")
        out.append((round(confidence, 3), semantic, reasons))
    return sorted(out, key=lambda c: -c[0])


def _judge(column: str, array: pa.Array, is_key: bool) -> tuple[list[tuple], str | None]:
    """Candidates for a column, or the reason it gets None outright."""
    if is_key:
        return [], "primary key"
    kind, values = _values(array)
    if kind not in ("string", "int", "date"):
        return [], kind
    tokens = name_tokens(column)
    core = [t for t in tokens if t not in _FILLER]
    exact = any(s.replace("_", "") == "".join(core) for s in SYNONYMS["Identity.CustomerNumber"])
    if core and core[-1] in _KEY_WORDS and not exact:
        return [], f"name '{column}' says it is a key or ID, not customer data"
    if values and kind == "string" and _share(_DATETIME_RE.match, values) >= 0.8:
        return [], _TIMESTAMPS
    candidates = _candidates(tokens, kind, values)
    best = candidates[0][0] if candidates else 0.0
    if best < MIN_CONFIDENCE:
        id_shaped = kind != "date" and len(set(values)) == len(values) >= 20
        if id_shaped and _share(_ID_RE.match, values) >= 0.9:
            return [], "unique ID-like codes: looks like a key"
        if core and core[-1] in _NUMBER_WORDS and not exact:
            return [], f"name '{column}' says it is a number or key, not customer data"
        if kind == "int":
            return [], "numbers (amounts, counts), not customer data"
    return candidates, None


def suggest_columns(
    table_label: str, columns: dict[str, pa.Array], keys: Collection[str] = ()
) -> list[Suggestion]:
    """Suggest a semantic type for each column from its name and a sample of its values.

    `columns` maps column name -> sampled values (up to 1,000 non-null); `keys` are columns
    known to be keys (the primary key), which never get a type.
    """
    judged = {c: _judge(c, a, c in keys) for c, a in columns.items()}
    chosen: dict[str, Suggestion] = {}
    taken: dict[str, str] = {}
    # The most confident column claims a type first; a later column that wanted the same
    # type gets None, so a table never maps two columns to one type.
    order = sorted(judged, key=lambda c: -(judged[c][0][0][0] if judged[c][0] else 0.0))
    for column in order:
        candidates, why_not = judged[column]
        best, semantic, reasons = candidates[0] if candidates else (0.0, None, [])
        if why_not is not None:
            semantic, confidence, reasons = None, 0.95, [why_not]
        elif semantic is None or best < MIN_GUESS:
            guess = f" (best guess {semantic} {best:.2f})" if semantic and best else ""
            semantic, confidence, reasons = None, 1 - best, [f"no type fits{guess}"]
        elif semantic in taken:
            text = f"{semantic} already given to {taken[semantic]}"
            semantic, confidence, reasons = None, 1 - best, [text, *reasons]
        else:
            taken[semantic], confidence = column, best
        chosen[column] = Suggestion(table_label, column, semantic, round(confidence, 3), reasons)
    return [chosen[c] for c in columns]


def suggest_for_project(
    engine: Engine,
    project: Project,
    landed: dict[str, Path],
    tables: Iterable[str] | None = None,
) -> list[Suggestion]:
    """Suggestions for every landed source table (keys 'source.table' or the table id), or
    only the tables named in `tables` ('source' or 'source.table'); project order."""
    wanted = {r.label for s in tables for r in project.find_tables(s)} if tables else None
    out: list[Suggestion] = []
    for ref in project.table_refs():
        path = landed.get(ref.label) or landed.get(ref.id)
        if path is None or (wanted is not None and ref.label not in wanted):
            continue
        table = engine.read(Path(path))
        # The sample is taken engine-side so a large table is never pulled into Python.
        columns = {
            name: engine.to_arrow(
                table.select(name).filter(table[name].notnull()).limit(SAMPLE_SIZE)
            )[name].combine_chunks()
            for name in table.columns
        }
        out += suggest_columns(ref.label, columns, keys={ref.table.primary_key})
    return out


def as_yaml_fields(
    suggestions: Iterable[Suggestion], min_confidence: float = MIN_CONFIDENCE
) -> dict[str, dict[str, str]]:
    """'source.table' -> {column: semantic}, for unify.tables[].fields."""
    fields: dict[str, dict[str, str]] = {}
    for s in suggestions:
        if s.semantic is not None and s.confidence >= min_confidence:
            fields.setdefault(s.table, {})[s.column] = s.semantic
    return fields


def as_yaml_text(fields: dict[str, dict[str, str]]) -> str:
    """The `unify: tables:` block of :func:`as_yaml_fields`, ready to paste."""
    lines = ["unify:", "  tables:"]
    for table, columns in fields.items():
        lines += [f"    - table: {table}", "      fields:"]
        lines += [f"        {column}: {semantic}" for column, semantic in columns.items()]
    return "\n".join(lines) + "\n"
