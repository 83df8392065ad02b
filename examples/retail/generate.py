"""Generate the demo data of "Maple & Finch", a fictional US retailer.

Three customer sources (CRM, web shop, loyalty programme) describe overlapping sets of the
same people, with the mess real sources have: duplicates, typos, nicknames, accents, phone and
address formats, missing values, households, and a few unparseable rows. Activity sources
(orders, order lines, web visits, support cases, subscriptions) hang off the source keys.
`truth.csv` records which person every customer record belongs to, for tests only.

    python examples/retail/generate.py [--out DIR] [--people N] [--seed S]

Everything is drawn from one `random.Random(seed)` and seeded Faker instances, and "today" is
fixed, so the same seed gives byte-identical files. Never iterate over a set here: string hash
order changes between interpreter runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from faker import Faker

T = TypeVar("T")

TODAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 1)
EARLIEST = datetime(2016, 1, 1)  # when the CRM went live; no record is older

# --- who is where -------------------------------------------------------------------------
# Membership is drawn independently and redrawn when a person would be in no source at all;
# the redraw lifts these base rates to about 70% / 60% / 45% of people.
SOURCE_RATES = {"crm": 0.64, "shop": 0.55, "loyalty": 0.41}
DUPLICATE_RATE = 0.03  # a second record of the same person, with a new key, in the same source
HOUSEHOLD_SHARE = 0.15  # people living in households of 2-4 (same last name, address, landline)
FAMILY_EMAIL_RATE = 0.30  # households whose members all give one shared email address
LANDLINE_SHARE = 0.30  # people outside households who also have a landline
FOREIGN_NAME_SHARE = 0.10  # de_DE / fr_FR / es_ES names, for accents
FORMAL_NAME_SHARE = 0.30  # en_US people whose first name has nicknames (Robert, see NICKNAMES)
UNIT_SHARE = 0.20  # addresses with an apartment number

# --- per record mess ----------------------------------------------------------------------
NICKNAME_RATE = 0.08  # of all records: a nickname instead of the formal first name
# ... which takes this share of the records of people who have a formal name:
NICKNAME_ODDS = NICKNAME_RATE / (FORMAL_NAME_SHARE * (1 - FOREIGN_NAME_SHARE))
TYPO_RATE = 0.05  # one character edit in the first or last name
CASE_VARIATION_RATE = 0.05  # name written in upper or lower case
ACCENT_STRIP_RATE = 0.50  # of records whose true name has accents: written without them
ABBREVIATION_RATE = 0.50  # "Street" written as "St" / "St."
EMAIL_MISSING_RATE = 0.10
EMAIL_CASE_RATE = 0.10  # "John.Smith@Gmail.com" instead of "john.smith@gmail.com"
MISSING_RATE = 0.05  # every other optional field
PHONE_EXTENSION_RATE = 0.05  # "+1-555-123-4567 ext 12"
LAST_FIRST_RATE = 0.15  # shop full_name written "Last, First"

# Planted bad rows, always exactly these (see write_crm and write_loyalty): in crm_contacts.csv
# 2 ragged rows, 1 row re-using another person's contact_id, 1 row with an empty contact_id;
# in loyalty_members.jsonl 2 lines that are not valid JSON.

# --- activity volumes, per person -----------------------------------------------------------
ORDERS_PER_PERSON = 2.5
ORDER_LINE_COUNT_WEIGHTS = {1: 30, 2: 27, 3: 22, 4: 12, 5: 9}  # about 2.4 lines per order
VISITS_PER_PERSON = 7.5
ANONYMOUS_VISIT_RATE = 0.08  # visits before login: no account_id
SUPPORT_CASES_PER_PERSON = 0.4
SATISFACTION_MISSING_RATE = 0.20
SUBSCRIPTIONS_PER_PERSON = 0.2

NICKNAMES_MALE = {
    "Robert": ["Bob", "Rob", "Bobby"],
    "William": ["Bill", "Will", "Billy"],
    "Michael": ["Mike", "Mikey"],
    "James": ["Jim", "Jimmy"],
    "Richard": ["Rick", "Dick"],
    "Thomas": ["Tom", "Tommy"],
    "Charles": ["Charlie", "Chuck"],
    "Joseph": ["Joe", "Joey"],
    "Daniel": ["Dan", "Danny"],
    "Matthew": ["Matt"],
    "Anthony": ["Tony"],
    "Christopher": ["Chris"],
    "Nicholas": ["Nick"],
    "Steven": ["Steve"],
    "Edward": ["Ed", "Eddie"],
    "Benjamin": ["Ben"],
    "Alexander": ["Alex"],
}
NICKNAMES_FEMALE = {
    "Elizabeth": ["Liz", "Beth", "Betty"],
    "Katherine": ["Kate", "Kathy", "Katie"],
    "Jennifer": ["Jen", "Jenny"],
    "Margaret": ["Maggie", "Peggy"],
    "Patricia": ["Pat", "Patty"],
    "Susan": ["Sue"],
    "Deborah": ["Debbie", "Deb"],
    "Rebecca": ["Becky"],
    "Jessica": ["Jess"],
    "Samantha": ["Sam"],
    "Victoria": ["Vicky"],
}
NICKNAMES = {**NICKNAMES_MALE, **NICKNAMES_FEMALE}
NICKNAME_LIST = [nick for nicks in NICKNAMES.values() for nick in nicks]

STREET_TYPES = {
    "Street": ["St", "St."],
    "Avenue": ["Ave", "Ave."],
    "Road": ["Rd", "Rd."],
    "Drive": ["Dr", "Dr."],
    "Boulevard": ["Blvd", "Blvd."],
    "Lane": ["Ln"],
    "Court": ["Ct"],
    "Place": ["Pl"],
}
STREET_NAMES = ["Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park"]
AREA_CODES = ["212", "312", "415", "503", "512", "602", "617", "702", "713", "720", "786", "801"]
AREA_CODES += ["206", "214", "303", "305", "404", "469", "480", "614", "646", "704", "919", "971"]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com"]

CATALOG = {  # category -> (brands, product nouns, price range in dollars)
    "Shoes": (
        ["Stridewell", "Trailhead"],
        ["Running Shoe", "Hiking Boot", "Sneaker", "Sandal"],
        (40, 180),
    ),
    "Outdoor": (
        ["Summit Gear", "Pinecrest"],
        ["Tent", "Backpack", "Sleeping Bag", "Headlamp"],
        (15, 400),
    ),
    "Kitchen": (
        ["Copperleaf", "HomeChef"],
        ["Chef's Knife", "Frying Pan", "Blender", "Kettle"],
        (12, 250),
    ),
    "Electronics": (
        ["Voltix", "Soundry"],
        ["Earbuds", "Bluetooth Speaker", "Charger", "Smartwatch"],
        (9, 300),
    ),
    "Books": (
        ["Lantern Press", "Bluebird Books"],
        ["Cookbook", "Travel Guide", "Mystery Novel"],
        (8, 45),
    ),
    "Beauty": (
        ["Lumière", "Petal & Co"],
        ["Face Cream", "Shampoo", "Lip Balm", "Sunscreen SPF 50"],
        (5, 120),
    ),
}
PRODUCT_ADJECTIVES = ["Classic", "Pro", "Lite", "Deluxe", "Everyday", "Eco"]
SUBSCRIPTION_PLANS = {"Free Shipping Pass": 4.99, "Maple Club": 9.99, "Maple Club Family": 14.99}

FEEDBACK = {  # sentiment -> (subjects, texts); {product} and {order} are filled in
    "positive": (
        ["Thank you", "Great service", "Happy with my order"],
        [
            "Delivery was fast and the {product} is exactly as described. Thank you!",
            'Your agent Maria was "super helpful", sorted my return in five minutes.',
            "Love the {product}: great quality, fair price, and it came well packed.",
            "Order {order} arrived a day early. Great job, team.",
            "Best customer service I've had in years, will shop again.",
        ],
    ),
    "neutral": (
        ["Question about my order", "Change of address", "Invoice request"],
        [
            "Can you send me an invoice for order {order}?",
            "I moved, please update my address, phone and email on file.",
            "Is the {product} available in a larger size?",
            'What does "processing" mean on order {order}? It has said that for two days.',
            "Please cancel my newsletter subscription.",
        ],
    ),
    "negative": (
        ["Complaint", "Damaged item", "App problem", "Refund not received"],
        [
            "The app keeps crashing and support never answered. Terrible.",
            "The {product} arrived broken, and nobody replied to my emails.",
            'Order {order} was marked "delivered" but never arrived, I want a refund.',
            "Charged twice for order {order}, still waiting for the refund, third time asking.",
            'The "waterproof" {product} leaked on the first day. Very disappointed.',
        ],
    ),
}
INCOME_BANDS = ["under 35k", "35-75k", "75-150k", "over 150k"]
SUPPORT_CHANNELS = ["email", "phone", "chat", "web_form"]
PAGE_TYPES = {"home": 10, "category": 20, "product": 35, "search": 15, "cart": 8, "checkout": 5}
PAGE_TYPES["account"] = 7
SITE = "https://shop.maplefinch.example"
CRM_COLUMNS = ["contact_id", "first_name", "last_name", "email", "phone", "street", "city"]
CRM_COLUMNS += ["state", "postal_code", "birth_date", "created_at", "modified_at"]


Record = tuple["Person", dict]  # a true person and one source record of them


@dataclass
class Person:
    """The true person behind the records; sources see distorted renderings of it."""

    person_id: str
    first_name: str
    last_name: str
    gender: str
    birth_date: date
    email: str
    mobile: str  # 10 digits
    landline: str | None
    house_number: str
    street_name: str
    street_type: str  # a key of STREET_TYPES
    unit: str | None
    city: str
    state: str
    postal_code: str
    household_id: str | None


# --- small helpers --------------------------------------------------------------------------


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def maybe(value: T, rng: random.Random, rate: float = MISSING_RATE) -> T | None:
    """The value, or None (a missing optional field) with probability `rate`."""
    return None if rng.random() < rate else value


def random_datetime(rng: random.Random, start: datetime, end: datetime = NOW) -> datetime:
    seconds = max(0, int((end - start).total_seconds()))
    return start + timedelta(seconds=rng.randint(0, seconds))


def one_char_edit(text: str, rng: random.Random) -> str:
    """A typo: substitute, delete, insert or transpose one character (never the first one,
    which people rarely get wrong)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    while True:
        i = rng.randrange(1, len(text)) if len(text) > 1 else 0
        op = rng.choice(["substitute", "delete", "insert", "transpose"])
        if op == "substitute":
            typo = text[:i] + rng.choice(letters) + text[i + 1 :]
        elif op == "delete" and len(text) > 2:
            typo = text[:i] + text[i + 1 :]
        elif op == "transpose" and i + 1 < len(text):
            typo = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        else:
            typo = text[:i] + rng.choice(letters) + text[i:]
        if typo != text:
            return typo


def format_phone(digits: str, rng: random.Random) -> str:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    if rng.random() < PHONE_EXTENSION_RATE:
        return f"+1-{a}-{b}-{c} ext {rng.randint(2, 99)}"
    formats = ["({a}) {b}-{c}", "{a}.{b}.{c}", "+1 {a} {b} {c}", "{a}{b}{c}", "{a}-{b}-{c}"]
    return rng.choice(formats).format(a=a, b=b, c=c)


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> int:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[csv_value(v) for v in row] for row in rows])
    return len(rows)


# --- people ---------------------------------------------------------------------------------


class PeopleFactory:
    """Makes unique true people; households share a last name, address and landline."""

    def __init__(self, rng: random.Random, seed: int) -> None:
        self.rng = rng
        self.fakers = {}
        for i, locale in enumerate(["en_US", "de_DE", "fr_FR", "es_ES"]):
            self.fakers[locale] = Faker(locale)
            self.fakers[locale].seed_instance(seed + i)
        self.used_phones: set[str] = set()  # membership tests only: sets are never iterated
        self.used_emails: set[str] = set()

    def phone(self) -> str:
        while True:
            number = self.rng.choice(AREA_CODES) + f"{self.rng.randint(200, 999)}"
            number += f"{self.rng.randint(0, 9999):04d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def email(self, local: str) -> str:
        local = "".join(c for c in strip_accents(local).lower() if c.isalnum() or c == ".")
        domain = self.rng.choice(EMAIL_DOMAINS)
        candidate, n = f"{local}@{domain}", 1
        while candidate in self.used_emails:
            n += 1
            candidate = f"{local}{n}@{domain}"
        self.used_emails.add(candidate)
        return candidate

    def first_name(self, gender: str, locale: str) -> str:
        formal = NICKNAMES_MALE if gender == "M" else NICKNAMES_FEMALE
        if locale == "en_US" and self.rng.random() < FORMAL_NAME_SHARE:
            return self.rng.choice(list(formal))
        fake = self.fakers[locale]
        while True:
            # Faker's names never include formal names or nicknames, so that every nickname in
            # the data is a planted one and the rates above hold.
            name = fake.first_name_male() if gender == "M" else fake.first_name_female()
            if name not in NICKNAMES and name not in NICKNAME_LIST:
                return name

    def person(self, like: Person | None = None, household_id: str | None = None) -> Person:
        """A new person; with `like`, a member of the same household as `like`."""
        rng, us = self.rng, self.fakers["en_US"]
        locale = "en_US"
        if rng.random() < FOREIGN_NAME_SHARE:
            locale = rng.choice(["de_DE", "fr_FR", "es_ES"])
        gender = rng.choice(["M", "F"])
        first = self.first_name(gender, locale)
        birth = TODAY - timedelta(days=rng.randint(18 * 365, 85 * 365))
        if like is None:
            last = self.fakers[locale].last_name()
            state = us.state_abbr(include_territories=False)
            address = dict(
                house_number=str(rng.randint(1, 9999)),
                street_name=rng.choice([us.last_name(), rng.choice(STREET_NAMES)]),
                street_type=rng.choice(list(STREET_TYPES)),
                unit=str(rng.randint(1, 40)) if rng.random() < UNIT_SHARE else None,
                city=us.city(),
                state=state,
                postal_code=us.zipcode_in_state(state),
            )
            landline = self.phone() if household_id or rng.random() < LANDLINE_SHARE else None
        else:
            last = like.last_name
            address = {k: getattr(like, k) for k in ["house_number", "street_name", "street_type"]}
            address.update(unit=like.unit, city=like.city, state=like.state)
            address.update(postal_code=like.postal_code)
            landline = like.landline
        return Person(
            person_id="",  # numbered after shuffling
            first_name=first,
            last_name=last,
            gender=gender,
            birth_date=birth,
            email=self.email(f"{first}.{last}".replace(" ", "")),
            mobile=self.phone(),
            landline=landline,
            household_id=household_id,
            **address,
        )


def build_people(count: int, rng: random.Random, seed: int) -> list[Person]:
    factory = PeopleFactory(rng, seed)
    people: list[Person] = []
    household_target = round(count * HOUSEHOLD_SHARE)
    while household_target - len(people) >= 2:
        size = min(rng.randint(2, 4), household_target - len(people))
        household_id = f"H{len(people) + 1:05d}"
        head = factory.person(household_id=household_id)
        members = [head] + [factory.person(head, household_id) for _ in range(size - 1)]
        if rng.random() < FAMILY_EMAIL_RATE:
            shared = factory.email(f"the{head.last_name.replace(' ', '')}s")
            for member in members:
                member.email = shared
        people += members
    while len(people) < count:
        people.append(factory.person())
    rng.shuffle(people)  # households were made first; person ids should not give that away
    for i, person in enumerate(people, start=1):
        person.person_id = f"P{i:05d}"
    return people


def assign_sources(people: list[Person], rng: random.Random) -> dict[str, list[Person]]:
    members: dict[str, list[Person]] = {source: [] for source in SOURCE_RATES}
    for person in people:
        chosen: list[str] = []
        while not chosen:
            chosen = [s for s, rate in SOURCE_RATES.items() if rng.random() < rate]
        for source in chosen:
            members[source].append(person)
    return members


# --- rendering a person as one source record -------------------------------------------------


def render_name(person: Person, rng: random.Random) -> tuple[str, str]:
    first, last = person.first_name, person.last_name
    if first in NICKNAMES and rng.random() < NICKNAME_ODDS:
        first = rng.choice(NICKNAMES[first])
    if strip_accents(first + last) != first + last and rng.random() < ACCENT_STRIP_RATE:
        first, last = strip_accents(first), strip_accents(last)
    if rng.random() < TYPO_RATE:
        if rng.random() < 0.5:
            first = one_char_edit(first, rng)
        else:
            last = one_char_edit(last, rng)
    if rng.random() < CASE_VARIATION_RATE:
        change = rng.choice([str.upper, str.lower])
        first, last = change(first), change(last)
    return first, last


def render_email(person: Person, rng: random.Random) -> str | None:
    if rng.random() < EMAIL_MISSING_RATE:
        return None
    if rng.random() < EMAIL_CASE_RATE:
        local, domain = person.email.split("@")
        if rng.random() < 0.3:
            return person.email.upper()
        return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()
    return person.email


def render_street(person: Person, rng: random.Random) -> str:
    street_type = person.street_type
    if rng.random() < ABBREVIATION_RATE:
        street_type = rng.choice(STREET_TYPES[street_type])
    line = f"{person.house_number} {person.street_name} {street_type}"
    if person.unit:
        unit = rng.choice([f"Apt {person.unit}", f"#{person.unit}", f"Apt. {person.unit}"])
        line += rng.choice([" ", ", "]) + unit
    return line


def render_phone(person: Person, rng: random.Random) -> str:
    digits = person.landline if person.landline and rng.random() < 0.5 else person.mobile
    return format_phone(digits, rng)


def crm_contact(person: Person, rng: random.Random) -> dict:
    first, last = render_name(person, rng)
    created = random_datetime(rng, EARLIEST, NOW - timedelta(days=1))
    return {
        "contact_id": "",
        "first_name": first,
        "last_name": last,
        "email": render_email(person, rng),
        "phone": maybe(render_phone(person, rng), rng),
        "street": maybe(render_street(person, rng), rng),
        "city": maybe(person.city, rng),
        "state": maybe(person.state, rng),
        "postal_code": maybe(person.postal_code, rng),
        "birth_date": maybe(person.birth_date.isoformat(), rng),
        "created_at": created.isoformat(),
        "modified_at": random_datetime(rng, created).isoformat(),
    }


def shop_account(person: Person, rng: random.Random) -> dict:
    first, last = render_name(person, rng)
    full_name = f"{last}, {first}" if rng.random() < LAST_FIRST_RATE else f"{first} {last}"
    signup = random_datetime(rng, datetime(2018, 3, 1), NOW - timedelta(days=7))
    last_login = random_datetime(rng, signup)
    return {
        "account_id": 0,
        "full_name": full_name,
        "email_address": render_email(person, rng),
        "mobile": maybe(format_phone(person.mobile, rng), rng),
        "address_line": maybe(render_street(person, rng), rng),
        "zip": maybe(person.postal_code, rng),
        "city": maybe(person.city, rng),
        "signup_ts": signup,
        "last_login_ts": maybe(last_login, rng),
    }


def loyalty_member(person: Person, rng: random.Random) -> dict:
    first, last = render_name(person, rng)
    points = min(60000, int(rng.paretovariate(1.2) * 300) - 300)  # few members hoard points
    tier = "Gold" if points >= 5000 else "Silver" if points >= 1000 else "Bronze"
    joined = random_datetime(rng, datetime(2019, 1, 1), NOW - timedelta(days=1)).date()
    return {
        "member_no": "",
        "given_name": first,
        "family_name": last,
        "e_mail": render_email(person, rng),
        "tel": maybe(render_phone(person, rng), rng),
        "birthday": maybe(person.birth_date.strftime("%m/%d/%Y"), rng),
        "postcode": maybe(person.postal_code, rng),
        "points_balance": points,
        "tier": tier,
        "joined_on": joined.isoformat(),
    }


RENDERERS = {"crm": crm_contact, "shop": shop_account, "loyalty": loyalty_member}


def build_records(source: str, people: list[Person], rng: random.Random) -> list[Record]:
    """(person, record) pairs of one source in file order, with in-source duplicates."""
    render = RENDERERS[source]
    records = []
    for person in people:
        records.append((person, render(person, rng)))
        if rng.random() < DUPLICATE_RATE:
            records.append((person, render(person, rng)))  # re-rendered: differs in details
    rng.shuffle(records)
    return records


# --- the three customer sources --------------------------------------------------------------


def write_crm(out: Path, records: list[Record], people: list[Person], rng: random.Random) -> dict:
    """crm_contacts.csv with the planted bad rows; returns counts, truth rows and good contacts."""
    rows: list[list[object]] = []
    truth = []
    for i, (person, record) in enumerate(records, start=1):
        record["contact_id"] = f"C{i:06d}"
        rows.append([record[c] for c in CRM_COLUMNS])
        truth.append(("crm", "contacts", record["contact_id"], person.person_id))
    next_key = len(records) + 1

    # A different person re-using an existing contact_id, placed after the original row.
    original = rng.randrange(len(rows))
    owner = records[original][0]
    other = rng.choice([p for p in people if p is not owner])
    reused = crm_contact(other, rng)
    reused["contact_id"] = rows[original][0]
    rows.insert(rng.randint(original + 1, len(rows)), [reused[c] for c in CRM_COLUMNS])
    truth.append(("crm", "contacts", reused["contact_id"], other.person_id))

    empty = crm_contact(rng.choice(people), rng)  # contact_id stays ""
    rows.insert(rng.randint(0, len(rows)), [empty[c] for c in CRM_COLUMNS])

    # Ragged rows: an export that forgot to quote "12 Oak St, Apt 4" (one field too many)
    # and one cut off before its last two fields.
    person = rng.choice([p for p in people if p.unit] or people)
    too_many = crm_contact(person, rng)
    too_many["contact_id"] = f"C{next_key:06d}"
    values = [too_many[c] for c in CRM_COLUMNS]
    street_at = CRM_COLUMNS.index("street")
    street = render_street(replace(person, unit=None), rng)
    values[street_at : street_at + 1] = [street, f" Apt {person.unit or 9}"]
    rows.insert(rng.randint(0, len(rows)), values)
    too_few = crm_contact(rng.choice(people), rng)
    too_few["contact_id"] = f"C{next_key + 1:06d}"
    rows.insert(rng.randint(0, len(rows)), [too_few[c] for c in CRM_COLUMNS][:-2])

    count = write_csv(out / "crm_contacts.csv", CRM_COLUMNS, rows)
    parseable = [row for row in rows if len(row) == len(CRM_COLUMNS)]
    key_counts = Counter(row[0] for row in parseable if row[0])
    return {
        "rows": count,
        "crm_ragged_rows": len(rows) - len(parseable),
        "crm_duplicate_key_rows": sum(n - 1 for n in key_counts.values()),
        "crm_empty_key_rows": sum(row[0] == "" for row in parseable),
        "truth": truth,
        "contacts": [(record["contact_id"], record) for _, record in records],
    }


def write_shop(out: Path, records: list[Record]) -> dict:
    truth = []
    for i, (person, record) in enumerate(records):
        record["account_id"] = 10001 + i
        truth.append(("shop", "accounts", str(record["account_id"]), person.person_id))
    schema = pa.schema(
        [
            ("account_id", pa.int64()),
            *[(c, pa.string()) for c in ["full_name", "email_address", "mobile"]],
            *[(c, pa.string()) for c in ["address_line", "zip", "city"]],
            ("signup_ts", pa.timestamp("us")),
            ("last_login_ts", pa.timestamp("us")),
        ]
    )
    table = pa.Table.from_pylist([r for _, r in records], schema=schema)
    pq.write_table(table, out / "shop_accounts.parquet")
    return {"rows": len(records), "truth": truth, "accounts": [r for _, r in records]}


def write_loyalty(
    out: Path, records: list[Record], people: list[Person], rng: random.Random
) -> dict:
    lines, truth = [], []
    for i, (person, record) in enumerate(records, start=1):
        record["member_no"] = f"L-{i:05d}"
        lines.append(json.dumps(record, ensure_ascii=False))
        truth.append(("loyalty", "members", record["member_no"], person.person_id))
    # Two broken lines: one cut off mid-record (a crashed export), one with a trailing comma.
    for n, kind in enumerate(["truncated", "trailing_comma"], start=len(records) + 1):
        record = loyalty_member(rng.choice(people), rng)
        record["member_no"] = f"L-{n:05d}"
        text = json.dumps(record, ensure_ascii=False)
        text = text[: len(text) // 2] if kind == "truncated" else text[:-1] + ", }"
        lines.insert(rng.randint(0, len(lines)), text)
    (out / "loyalty_members.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "rows": len(lines),
        "loyalty_invalid_json_lines": sum(not is_json(line) for line in lines),
        "truth": truth,
        "members": [r for _, r in records],
    }


# --- activities --------------------------------------------------------------------------


def build_catalog(rng: random.Random) -> list[dict]:
    products = []
    for category, (brands, nouns, (low, high)) in CATALOG.items():
        for brand in brands:
            for noun in nouns:
                for adjective in rng.sample(PRODUCT_ADJECTIVES, 2):
                    products.append(
                        {
                            "product_id": f"SKU-{10001 + len(products)}",
                            "product_name": f"{brand} {adjective} {noun}",
                            "category": category,
                            "brand": brand,
                            "price_cents": rng.randint(low, high) * 100 - 1,  # $xx.99
                        }
                    )
    return products


def account_weights(accounts: list[dict], rng: random.Random) -> list[float]:
    """Some customers buy and browse far more than others, and older accounts had more time."""
    weights = []
    for account in accounts:
        tenure = (NOW - account["signup_ts"]).days + 30
        weights.append(rng.lognormvariate(0, 1) * tenure)
    return weights


def write_orders(out: Path, accounts: list[dict], people: int, rng: random.Random) -> dict:
    catalog = build_catalog(rng)
    weights = account_weights(accounts, rng)
    chosen = rng.choices(accounts, weights=weights, k=round(ORDERS_PER_PERSON * people))
    stamps = sorted((random_datetime(rng, a["signup_ts"]), a["account_id"]) for a in chosen)
    line_counts, line_count_weights = (
        list(ORDER_LINE_COUNT_WEIGHTS),
        ORDER_LINE_COUNT_WEIGHTS.values(),
    )
    orders, lines = [], []
    for order_id, (ts, account_id) in enumerate(stamps, start=500001):
        line_count = rng.choices(line_counts, list(line_count_weights))[0]
        total_cents = 0
        for product in rng.sample(catalog, line_count):
            quantity = rng.choices([1, 2, 3], [80, 15, 5])[0]
            price = product["price_cents"]
            if rng.random() < 0.1:  # promotion price
                price = price * 4 // 5
            total_cents += quantity * price
            lines.append(
                [len(lines) + 1, order_id, product["product_id"], product["product_name"]]
                + [product["category"], product["brand"], quantity, f"{price / 100:.2f}"]
            )
        age_days = (NOW - ts).days
        if age_days < 3:
            status = "processing"
        elif age_days < 10:
            status = "shipped"
        else:
            status = rng.choices(["completed", "returned", "cancelled"], [92, 4, 4])[0]
        channel = rng.choices(["web", "app"], [60, 40])[0]
        orders.append(
            [order_id, account_id, ts, f"{total_cents / 100:.2f}", "USD", channel, status]
        )
    order_header = ["order_id", "account_id", "order_ts", "total_amount", "currency"]
    write_csv(out / "orders.csv", order_header + ["channel", "status"], orders)
    line_header = ["line_id", "order_id", "product_id", "product_name", "category", "brand"]
    write_csv(out / "order_lines.csv", line_header + ["quantity", "unit_price"], lines)
    return {"orders": len(orders), "order_lines": len(lines), "catalog": catalog}


def write_web_visits(
    out: Path, accounts: list[dict], catalog: list[dict], people: int, rng: random.Random
) -> int:
    weights = account_weights(accounts, rng)
    chosen = rng.choices(accounts, weights=weights, k=round(VISITS_PER_PERSON * people))
    stamps = sorted((random_datetime(rng, a["signup_ts"]), a["account_id"]) for a in chosen)
    page_types, page_weights = list(PAGE_TYPES), list(PAGE_TYPES.values())
    rows = []
    for visit_id, (ts, account_id) in enumerate(stamps, start=1):
        page_type = rng.choices(page_types, page_weights)[0]
        product = rng.choice(catalog)
        path = {
            "home": "/",
            "category": f"/c/{product['category'].lower()}",
            "product": f"/p/{product['product_id'].lower()}",
            "search": f"/search?q={product['product_name'].split()[-1].lower()}",
            "cart": "/cart",
            "checkout": "/checkout",
            "account": "/account/orders",
        }[page_type]
        if rng.random() < ANONYMOUS_VISIT_RATE:
            account_id = None
        duration = int(rng.expovariate(1 / 45)) + 1
        rows.append([visit_id, account_id, ts, SITE + path, page_type, duration])
    header = ["visit_id", "account_id", "visit_ts", "url", "page_type", "duration_s"]
    return write_csv(out / "web_visits.csv", header, rows)


def write_support_cases(
    out: Path, contacts: list[tuple], catalog: list[dict], people: int, rng: random.Random
) -> int:
    chosen = rng.choices(contacts, k=round(SUPPORT_CASES_PER_PERSON * people))
    opened = sorted(
        (random_datetime(rng, datetime.fromisoformat(c["created_at"])), key) for key, c in chosen
    )
    rows = []
    for case_id, (ts, contact_id) in enumerate(opened, start=1):
        sentiment = rng.choices(["positive", "neutral", "negative"], [30, 30, 40])[0]
        subjects, texts = FEEDBACK[sentiment]
        text = rng.choice(texts).format(
            product=rng.choice(catalog)["product_name"], order=rng.randint(500001, 505000)
        )
        low, high = {"positive": (4, 5), "neutral": (3, 4), "negative": (1, 2)}[sentiment]
        score = None if rng.random() < SATISFACTION_MISSING_RATE else rng.randint(low, high)
        channel = rng.choice(SUPPORT_CHANNELS)
        rows.append(
            [f"CS-{case_id:05d}", contact_id, ts, channel, rng.choice(subjects), text, score]
        )
    header = ["case_id", "contact_id", "opened_at", "channel", "subject", "feedback_text"]
    return write_csv(out / "support_cases.csv", header + ["satisfaction"], rows)


def write_subscriptions(out: Path, members: list[dict], people: int, rng: random.Random) -> int:
    target = round(SUBSCRIPTIONS_PER_PERSON * people)
    rows: list[list[object]] = []
    for member in rng.sample(members, len(members)):
        if len(rows) >= target:
            break
        start = date.fromisoformat(member["joined_on"]) + timedelta(days=rng.randint(0, 200))
        if start >= TODAY:
            continue
        # Some members had an earlier subscription that ended before the current one.
        periods = 2 if rng.random() < 0.15 and len(rows) + 2 <= target else 1
        for period in range(periods):
            plan = rng.choice(list(SUBSCRIPTION_PLANS))
            ended = period < periods - 1 or rng.random() < 0.35
            end = start + timedelta(days=rng.randint(30, 700)) if ended else None
            if end and end >= TODAY:
                end = None
            rows.append(
                [f"SUB-{len(rows) + 1:05d}", member["member_no"], plan, start.isoformat()]
                + [end.isoformat() if end else None, f"{SUBSCRIPTION_PLANS[plan]:.2f}"]
                + [end is None and rng.random() < 0.85]
            )
            if end is None:
                break
            start = end + timedelta(days=rng.randint(1, 90))
            if start >= TODAY:
                break
    header = ["subscription_id", "member_no", "plan", "start_date", "end_date", "monthly_fee"]
    return write_csv(out / "subscriptions.csv", header + ["auto_renew"], rows)


def write_loyalty_ledger(out: Path, members: list[dict], rng: random.Random) -> int:
    """Points transactions per member: a sign-up bonus, points earned and redeemed over time,
    and, where the running total differs from the member's balance, a migration correction
    on the last day (the balance in loyalty_members is the old system's)."""
    rows: list[list[object]] = []
    for member in members:
        joined = datetime.fromisoformat(member["joined_on"])
        events = [(joined, 100, "signup_bonus")]
        for _ in range(rng.randint(0, 12)):
            events.append((random_datetime(rng, joined), rng.randint(1, 30) * 10, "purchase"))
        events.sort()
        total = sum(points for _, points, _ in events)
        for _ in range(rng.randint(0, 2)):
            if total >= 500:
                redeemed = rng.choice([250, 500])
                events.append((random_datetime(rng, events[-1][0]), -redeemed, "reward"))
                total -= redeemed
        balance = member["points_balance"]
        if isinstance(balance, int) and balance != total:
            events.append((NOW - timedelta(days=1), balance - total, "migration_correction"))
        for ts, points, reason in sorted(events, key=lambda e: e[0]):
            rows.append([f"PT-{len(rows) + 1:06d}", member["member_no"], ts, points, reason])
    header = ["transaction_id", "member_no", "booked_at", "points", "reason"]
    return write_csv(out / "loyalty_ledger.csv", header, rows)


# --- README -----------------------------------------------------------------------------------


def write_household_data(out: Path, everyone: list[Person], rng: random.Random) -> int:
    """A data provider's file keyed by e-mail (the custom enrichment of the demo): about half
    of the people, some e-mails in other cases, and a few addresses the retailer never saw."""
    rows: list[list[object]] = []
    for person in everyone:
        if rng.random() >= 0.5:
            continue
        email = person.email.upper() if rng.random() < 0.1 else person.email
        size = rng.choice([1, 1, 2, 2, 2, 3, 4, 5])
        rows.append([email, size, rng.choice(INCOME_BANDS), rng.random() < 0.6])
    for i in range(max(1, len(rows) // 20)):
        size = rng.choice([1, 2, 3])
        rows.append([f"someone.else{i}@example.net", size, rng.choice(INCOME_BANDS), False])
    header = ["email", "household_size", "income_band", "homeowner"]
    return write_csv(out / "household_data.csv", header, rows)


def write_readme(out: Path, counts: dict[str, int], shares: dict[str, float], seed: int) -> None:
    c = counts
    text = f"""# Maple & Finch demo data

Generated by `examples/retail/generate.py --people {c["people"]} --seed {seed}` with "today" =
{TODAY.isoformat()}. The same seed always gives byte-identical files. Rates are the constants at
the top of the generator.

| file | content | rows | key |
|---|---|---|---|
| crm_contacts.csv | CRM contacts | {c["crm_contacts.csv"]} | contact_id ("C000123") |
| shop_accounts.parquet | web shop accounts | {c["shop_accounts.parquet"]} | account_id (int) |
| loyalty_members.jsonl | loyalty members | {c["loyalty_members.jsonl"]} | member_no ("L-00042") |
| orders.csv | shop orders, FK account_id | {c["orders.csv"]} | order_id |
| order_lines.csv | order lines, FK order_id | {c["order_lines.csv"]} | line_id |
| web_visits.csv | page views, FK account_id (empty: anonymous) | {c["web_visits.csv"]} | visit_id |
| support_cases.csv | service desk, FK contact_id | {c["support_cases.csv"]} | case_id |
| subscriptions.csv | paid plans, FK member_no | {c["subscriptions.csv"]} | subscription_id |
| loyalty_ledger.csv | points (+ earned, - redeemed), FK member_no | {c["loyalty_ledger.csv"]} | |
| household_data.csv | household facts by e-mail | {c["household_data.csv"]} | email |
| truth.csv | NOT a source: the true person of each record | {c["truth.csv"]} | |

Columns: crm_contacts: contact_id, first_name, last_name, email, phone, street, city, state,
postal_code, birth_date (YYYY-MM-DD), created_at, modified_at (ISO timestamps).
shop_accounts: account_id, full_name ("First Last" or "Last, First"), email_address, mobile,
address_line, zip, city, signup_ts, last_login_ts (timestamp[us]).
loyalty_members: member_no, given_name, family_name, e_mail, tel, birthday (MM/DD/YYYY),
postcode, points_balance, tier (Bronze/Silver/Gold), joined_on (YYYY-MM-DD).
orders.total_amount equals the sum of quantity * unit_price of its lines. support_cases
.feedback_text is free text with commas and double quotes (CSV quoting matters); satisfaction is
1-5 or empty. subscriptions.end_date is empty while active. truth.csv: source, table, key,
person_id with (source, table) in (crm, contacts), (shop, accounts), (loyalty, members).

## Planted problems
- {c["people"]} people, {c["people_in_all_sources"]} of them in all three customer sources.
  Share of people in CRM / shop / loyalty: {shares["crm"]:.0%} / {shares["shop"]:.0%} /
  {shares["loyalty"]:.0%}.
- Duplicates inside a source (new key, same person): {DUPLICATE_RATE:.0%} of records.
- Households ({HOUSEHOLD_SHARE:.0%} of people, 2-4 members): same last name, address and
  landline; {FAMILY_EMAIL_RATE:.0%} of households share one email address.
- Names: nicknames ({NICKNAME_RATE:.0%}, Robert/Bob), one-character typos ({TYPO_RATE:.0%}),
  upper/lower case ({CASE_VARIATION_RATE:.0%}), accents stripped in {ACCENT_STRIP_RATE:.0%} of
  records of accented names (José/Jose).
- Phones: "(555) 123-4567", "555.123.4567", "+1 555 123 4567", "5551234567", "555-123-4567",
  "+1-555-123-4567 ext 12". Addresses: "Street"/"St"/"St.", "Apt 4"/"Apt. 4"/"#4".
- Emails: missing {EMAIL_MISSING_RATE:.0%}, different case {EMAIL_CASE_RATE:.0%}. Other optional
  fields missing {MISSING_RATE:.0%}.
- crm_contacts.csv: {c["crm_ragged_rows"]} ragged rows (one with an unquoted comma in the street,
  one field too many; one missing its last two fields), {c["crm_duplicate_key_rows"]} row of a
  different person re-using an existing contact_id (after the original row), and
  {c["crm_empty_key_rows"]} row with an empty contact_id.
- loyalty_members.jsonl: {c["loyalty_invalid_json_lines"]} lines that are not valid JSON (one
  truncated, one with a trailing comma).
- truth.csv lists every parseable keyed record, including the re-used contact_id (that key then
  appears twice), but not the empty-key row, the ragged rows or the invalid JSON lines.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


# --- entry points ---------------------------------------------------------------------------


def generate(out_dir: Path, people: int = 2000, seed: int = 42) -> dict[str, int]:
    """Write the demo data set into `out_dir`; return row counts per file and bad-row counts."""
    if people < 20:
        raise ValueError("people must be at least 20")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    everyone = build_people(people, rng, seed)
    members = assign_sources(everyone, rng)
    records = {s: build_records(s, members[s], rng) for s in SOURCE_RATES}

    crm = write_crm(out, records["crm"], everyone, rng)
    shop = write_shop(out, records["shop"])
    loyalty = write_loyalty(out, records["loyalty"], everyone, rng)
    truth = crm["truth"] + shop["truth"] + loyalty["truth"]
    write_csv(out / "truth.csv", ["source", "table", "key", "person_id"], truth)

    orders = write_orders(out, shop["accounts"], people, rng)
    sources_per_person: dict[str, set[str]] = {}
    for source, _, _, person_id in truth:
        sources_per_person.setdefault(person_id, set()).add(source)
    counts = {
        "people": people,
        "people_in_all_sources": sum(len(s) == 3 for s in sources_per_person.values()),
        "crm_contacts.csv": crm["rows"],
        "shop_accounts.parquet": shop["rows"],
        "loyalty_members.jsonl": loyalty["rows"],
        "orders.csv": orders["orders"],
        "order_lines.csv": orders["order_lines"],
        "web_visits.csv": write_web_visits(out, shop["accounts"], orders["catalog"], people, rng),
        "support_cases.csv": write_support_cases(
            out, crm["contacts"], orders["catalog"], people, rng
        ),
        "subscriptions.csv": write_subscriptions(out, loyalty["members"], people, rng),
        "loyalty_ledger.csv": write_loyalty_ledger(out, loyalty["members"], rng),
        "household_data.csv": write_household_data(out, everyone, rng),
        "truth.csv": len(truth),
        "crm_ragged_rows": crm["crm_ragged_rows"],
        "crm_duplicate_key_rows": crm["crm_duplicate_key_rows"],
        "crm_empty_key_rows": crm["crm_empty_key_rows"],
        "loyalty_invalid_json_lines": loyalty["loyalty_invalid_json_lines"],
    }
    shares = {s: len(members[s]) / people for s in SOURCE_RATES}
    write_readme(out, counts, shares, seed)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    started = time.perf_counter()
    counts = generate(args.out, args.people, args.seed)
    for name, count in counts.items():
        print(f"{name:28} {count:>7}")
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
