"""Synthetic customer data for the unify benchmark: 3 sources, known true persons.

`generate(n, out_dir)` writes `crm.csv`, `shop.parquet`, `loyalty.csv` (different column names
and formats, n records in all) and `truth.parquet` (source, key, person_id). Vectorised numpy
over object arrays, deterministic for a given seed; 1M records take about 15 s of CPU.

    python benchmarks/unify/generate.py 100000 /tmp/unify_100000
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

try:
    from . import names
    from .formats import CITY, OBJ, PAD4, SOURCES, source_table, upper
except ImportError:  # run as a script
    import names  # type: ignore[no-redef]
    from formats import CITY, OBJ, PAD4, SOURCES, source_table, upper  # type: ignore[no-redef]

SEED = 20261125
RECORDS_PER_PERSON = 2.2  # about n / 2.2 true persons
SOURCES_PER_PERSON_P = (0.30, 0.40, 0.30)  # a person is in 1, 2 or 3 sources
SAME_SOURCE_TWICE = 0.10  # a (person, source) is entered twice
# Rates calibrated so that exact rules (same email OR phone OR name + birth date) reach
# pairwise precision ~0.99 and cluster recall ~0.86 as in the reference measurement.
# With the first rates (15% missing emails and phones, 10% birth dates, 5% second
# emails, landlines in 30% of household records) they reached 0.89 and 0.92.
# Per-record corruption.
NAME_TYPO = 0.05  # one edit, per name field
NICKNAME = 0.07  # share of all records giving a nickname (only ~46 names have one)
# Missing values differ by source (shop logins need an email, few give a birth date there).
MISSING = {  # email, phone, birth date; averages 0.25, 0.28, 0.32
    "crm": (0.25, 0.20, 0.15),
    "shop": (0.05, 0.45, 0.60),
    "loyalty": (0.45, 0.20, 0.20),
}
MISSING_ADDRESS = 0.03
EMAIL_TYPO, PHONE_TYPO, DOB_ERROR = 0.01, 0.01, 0.02  # DOB: day/month swap or year off by one
# Per-person changes between sources; a record uses the alternative with probability 1/2.
SECOND_EMAIL = 0.25
SECOND_PHONE = 0.25
MOVED = 0.05  # a second address
NEW_SURNAME = 0.03  # women: a married or maiden name
# Households: share of persons living with 1-3 family members (same surname, address,
# landline; own first names and birth dates).
HOUSEHOLD = 0.15
HOUSEHOLD_SIZE_P = (0.5, 0.3, 0.2)  # 2, 3, 4 persons
LANDLINE_USE = 0.03  # a household member's record gives the shared landline
FAMILY_EMAIL = 0.03  # households sharing an email, used in half their members' records
TWINS = 0.10  # households of 4 whose two children are twins

PHONE_FORM_P = {  # weights of names.PHONE_FORMS per source
    "crm": (0.6, 0.1, 0.0, 0.1, 0.2),
    "shop": (0.1, 0.0, 0.5, 0.4, 0.0),
    "loyalty": (0.1, 0.5, 0.1, 0.1, 0.2),
}

NUM = np.array([str(i) for i in range(10000)], dtype=OBJ)
PAD3 = np.array([f"{i:03d}" for i in range(1000)], dtype=OBJ)
FIRST = np.array(names.FEMALE + names.MALE, dtype=OBJ)
LAST = np.array(names.LAST, dtype=OBJ)
STREETS = np.array(names.STREETS, dtype=OBJ)
CITY_ZIP = np.array([c.split("|")[2] for c in names.CITIES]).astype(int)
NICK = np.array([names.NICKNAMES.get(f) for f in FIRST], dtype=OBJ)
DOMAINS = np.array(names.DOMAINS, dtype=OBJ)
STREET_FULL, STREET_ABBR = np.array(names.STREET_TYPES, dtype=OBJ).T
APT_FORMS = np.array(names.APT_FORMS, dtype=OBJ)
PHONE_FORMS = np.array(names.PHONE_FORMS, dtype=OBJ)
lower = np.frompyfunc(str.lower, 1, 1)
initial = np.frompyfunc(lambda s: s[:1], 1, 1)
contains = np.frompyfunc(lambda seen, s: s in seen, 2, 1)


def isset(a: np.ndarray) -> np.ndarray:
    return np.not_equal(a, None)


def zipf(rng: np.random.Generator, n: int, size: int, a: float = 10.0) -> np.ndarray:
    """Indices 0..n-1 weighted 1 / (rank + a): frequency-ordered lists stay realistic."""
    w = 1.0 / (np.arange(n) + a)
    return rng.choice(n, size=size, p=w / w.sum())


def typo(rng: np.random.Generator, words: np.ndarray) -> np.ndarray:
    """One edit (substitute, delete, insert, transpose) in each word, letters a-z."""
    out, n = words.copy(), len(words)
    ops, where, chars = rng.integers(0, 4, n), rng.random(n), rng.integers(97, 123, n)
    for i, w in enumerate(words):
        if w and len(w) >= 3:
            k, c = 1 + int(where[i] * (len(w) - 2)), chr(chars[i])  # keep the first letter
            out[i] = (w[:k] + c + w[k + 1 :], w[:k] + w[k + 1 :], w[:k] + c + w[k:],
                      w[: k - 1] + w[k] + w[k - 1] + w[k + 1 :])[ops[i]]  # fmt: skip
    return out


LOCAL_PARTS = (  # email user names: f first name, s surname, i initial, n number
    lambda f, s, i, n: f + "." + s, lambda f, s, i, n: f + s, lambda f, s, i, n: i + s,
    lambda f, s, i, n: f + "_" + s, lambda f, s, i, n: f + "." + s + n,
    lambda f, s, i, n: f + n, lambda f, s, i, n: s + "." + f, lambda f, s, i, n: i + s + n,
)  # fmt: skip


def emails(rng: np.random.Generator, first: np.ndarray, last: np.ndarray, taken: set):
    """A personal-looking email per person, unique across persons (and calls sharing `taken`)."""
    f, s = lower(first), lower(last)
    i, n = initial(f), NUM[rng.integers(1, 100, len(f))]
    form = rng.integers(0, len(LOCAL_PARTS), len(f))
    out = np.empty(len(f), dtype=OBJ)
    for k, make in enumerate(LOCAL_PARTS):
        sel = form == k
        out[sel] = make(f[sel], s[sel], i[sel], n[sel])
    out = out + "@" + DOMAINS[rng.integers(0, len(DOMAINS), len(f))]
    # Gmail ignores dots in user names: f.s@ and fs@ are one mailbox, so one person's.
    keys = np.array([mailbox(e) for e in out], dtype=OBJ)
    dup = pd.Series(keys).duplicated().to_numpy() | contains(taken, keys).astype(bool)
    taken.update(keys[~dup])
    for k in np.flatnonzero(dup):  # a collision gets a number, as a provider would insist
        e = out[k]
        while mailbox(e) in taken:
            e = e.replace("@", NUM[rng.integers(100, 10000)] + "@")
        taken.add(mailbox(e))
        out[k] = e
    return out


def mailbox(email: str) -> str:
    """The mailbox an address delivers to: Gmail drops the dots of the user name."""
    user, _, domain = email.partition("@")
    return user.replace(".", "") + "@" + domain if domain == "gmail.com" else email


def phones(rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
    """10-digit numbers as int64, area code tied to the city."""
    area = 201 + (np.arange(len(CITY)) * 7919) % 780
    n = len(city)
    return area[city] * 10**7 + rng.integers(200, 1000, n) * 10**4 + rng.integers(0, 10**4, n)


def addresses(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    city = zipf(rng, len(CITY), n, a=20.0)
    small = rng.random(n) < 0.6
    return {
        "house": np.where(small, rng.integers(1, 300, n), rng.integers(1, 10000, n)),
        "street": zipf(rng, len(STREETS), n, a=50.0),
        "type": rng.choice(len(STREET_FULL), n, p=[0.36, 0.2, 0.12, 0.12] + [0.04] * 5),
        "apt": np.where(rng.random(n) < 0.25, rng.integers(1, 60, n), 0),
        "city": city,
        "zip": CITY_ZIP[city] + rng.integers(0, 30, n),
    }


def persons(rng: np.random.Generator, p: int) -> dict[str, np.ndarray]:
    male = rng.random(p) < 0.5
    first = zipf(rng, len(names.FEMALE), p) + male * len(names.FEMALE)
    ps = {"first": first, "last": zipf(rng, len(LAST), p), "male": male}
    ps["dob"] = rng.integers(0, 24000, p)  # days after 1940-01-01
    ps.update(addresses(rng, p))
    ps["phone"] = phones(rng, ps["city"])
    ps["landline"] = np.zeros(p, dtype=np.int64)
    ps["family_email"] = np.full(p, None, dtype=OBJ)
    # Households: the first HOUSEHOLD share of persons, in groups of 2-4 (persons are random).
    sizes = rng.choice([2, 3, 4], size=int(p * HOUSEHOLD / 2.7) + 1, p=HOUSEHOLD_SIZE_P)
    head = np.repeat(np.cumsum(sizes) - sizes, sizes)[: int(p * HOUSEHOLD)]
    member = np.arange(len(head))
    rank = member - head  # 0 head, 1 partner, 2-3 children
    for key in ("last", "house", "street", "type", "apt", "city", "zip"):
        ps[key][member] = ps[key][head]
    ps["landline"][member] = phones(rng, ps["city"][head])[head]
    ps["male"][member] = np.where(rank == 1, ~ps["male"][head], ps["male"][member])
    near, kid_age = rng.integers(-2200, 2200, len(member)), rng.integers(7000, 14000, len(member))
    dob = np.where(rank == 1, ps["dob"][head] + near, ps["dob"][member])
    # Folded back at the ends of the range, not clipped: clipping gave thousands of children
    # of young parents one birth date (the last day), a spike no real data set has.
    dob = np.abs(np.where(rank >= 2, ps["dob"][head] + kid_age, dob))
    dob = np.where(dob > 24000, 48000 - dob, dob)
    twins = (rank == 3) & (rng.random(len(member)) < TWINS)
    ps["dob"][member] = np.where(twins, np.roll(dob, 1), dob)
    half = len(names.FEMALE)
    ps["first"][member] = ps["first"][member] % half + ps["male"][member] * half
    for _ in range(2):  # family members have different first names
        for off in (1, 2, 3):
            f = ps["first"][member]
            clash = (rank >= off) & (f == np.roll(f, off))
            ps["first"][member[clash]] = f[clash] // half * half + (f[clash] % half + 1) % half
    taken: set[str] = set()
    ps["email"] = emails(rng, FIRST[ps["first"]], LAST[ps["last"]], taken)
    fam = (rng.random(len(member)) < FAMILY_EMAIL)[head]
    fam_email = emails(rng, LAST[ps["last"][head]], np.full(len(head), "family", dtype=OBJ), taken)
    ps["family_email"][member[fam]] = fam_email[head[fam]]
    # Changes between sources.
    ps["email2"] = emails(rng, FIRST[ps["first"]], LAST[ps["last"]], taken)
    ps["phone2"] = phones(rng, ps["city"])
    ps["last2"] = zipf(rng, len(LAST), p)
    ps["moved"] = rng.random(p) < MOVED
    ps["move"] = addresses(rng, p)
    for key, rate in (("email2", SECOND_EMAIL), ("phone2", SECOND_PHONE)):
        ps[key] = np.where(rng.random(p) < rate, ps[key], None)
    ps["last2"] = np.where((rng.random(p) < NEW_SURNAME) & ~ps["male"], ps["last2"], -1)
    return ps


def records(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(person, source) of n records: persons in 1-3 sources, some twice in one source."""
    p = round(n / RECORDS_PER_PERSON)
    k = rng.choice([1, 2, 3], size=p, p=SOURCES_PER_PERSON_P)
    member = rng.random((p, 3)).argsort(1).argsort(1) < k[:, None]
    count = member * (1 + (rng.random((p, 3)) < SAME_SOURCE_TWICE))
    cell = np.repeat(np.arange(p * 3), count.ravel())
    if len(cell) > n:
        cell = np.sort(rng.choice(cell, n, replace=False))
    elif len(cell) < n:
        cell = np.sort(np.concatenate([cell, rng.choice(cell, n - len(cell))]))
    return cell // 3, cell % 3


def pick(rng: np.random.Generator, base: np.ndarray, alt: np.ndarray, use: np.ndarray):
    """base, or alt where alt is set and a coin says so."""
    ok = use & (rng.random(len(base)) < 0.5)
    return np.where(ok, alt, base)


def corrupt(rng: np.random.Generator, pid: np.ndarray, src: np.ndarray) -> dict:
    """The values each record shows, before source formatting."""
    ps = persons(rng, int(pid.max()) + 1)
    g = {k: v[pid] for k, v in ps.items() if k != "move"}
    r = len(pid)
    coin = lambda rate: rng.random(r) < rate  # noqa: E731
    first, nick = FIRST[g["first"]], NICK[g["first"]]
    first = np.where(isset(nick) & coin(NICKNAME / isset(nick).mean()), nick, first)
    last = LAST[pick(rng, g["last"], g["last2"], g["last2"] >= 0)]
    for arr in (first, last):
        t = coin(NAME_TYPO)
        arr[t] = typo(rng, arr[t])
    email = pick(rng, g["email"], g["email2"], isset(g["email2"]))
    email = pick(rng, email, g["family_email"], isset(g["family_email"]))
    t = coin(EMAIL_TYPO)
    email[t] = typo(rng, email[t])
    email = np.where(coin(0.1), upper(email), email)  # typed in capitals now and then
    missing = np.array([MISSING[s] for s in SOURCES])[src]  # (records, 3)
    email[coin(missing[:, 0])] = None
    phone = pick(rng, g["phone"], g["phone2"], isset(g["phone2"]))
    phone = np.where((g["landline"] > 0) & coin(LANDLINE_USE), g["landline"], phone)
    phone = np.where(coin(PHONE_TYPO), phone + 10 ** rng.integers(0, 4, r), phone).astype(int)
    form = np.zeros(r, dtype=int)
    for s, name in enumerate(SOURCES):
        form[src == s] = rng.choice(len(PHONE_FORMS), (src == s).sum(), p=PHONE_FORM_P[name])
    pre, mid1, mid2 = PHONE_FORMS[form].T
    tel = pre + PAD3[phone // 10**7] + mid1 + PAD3[phone // 10**4 % 1000] + mid2
    tel = tel + PAD4[phone % 10**4]
    tel[coin(missing[:, 1])] = None

    date = np.datetime64("1940-01-01") + g["dob"]
    y = date.astype("M8[Y]").astype(int) + 1970
    m = date.astype("M8[M]").astype(int) % 12 + 1
    d = (date - date.astype("M8[M]")).astype(int) + 1
    err = coin(DOB_ERROR)
    swap = err & (d <= 12) & (d != m) & coin(0.5)
    m, d = np.where(swap, d, m), np.where(swap, m, d)
    y = np.where(err & ~swap, y + rng.choice([-1, 1], r), y)
    d = np.where((m == 2) & (d == 29), 28, d)

    moved = pick(rng, np.zeros(r, bool), np.ones(r, bool), g["moved"])
    a = {k: np.where(moved, v[pid], g[k]) for k, v in ps["move"].items()}
    form = rng.integers(0, 3, r)  # Street / St / St.
    dot = np.where(form == 2, ".", "")
    kind = np.where(form == 0, STREET_FULL[a["type"]], STREET_ABBR[a["type"]] + dot)
    street = NUM[a["house"]] + " " + STREETS[a["street"]] + " " + kind
    apt = APT_FORMS[rng.integers(0, len(APT_FORMS), r)] + NUM[a["apt"]]
    street = np.where(a["apt"] > 0, street + np.where(coin(0.3), ", ", " ") + apt, street)
    zip_text = PAD4[a["zip"] // 10] + NUM[a["zip"] % 10]
    no_addr = coin(MISSING_ADDRESS)
    street[no_addr], zip_text[no_addr | coin(0.02)] = None, None
    no_dob = coin(missing[:, 2])
    return {"first": first, "last": last, "email": email, "tel": tel, "y": y, "m": m, "d": d,
            "no_dob": no_dob, "street": street, "city": a["city"], "zip": zip_text}  # fmt: skip


def generate(n: int, out_dir: Path, seed: int = SEED) -> dict[str, int]:
    """Write the 3 sources and truth.parquet for n records into out_dir."""
    rng = np.random.default_rng(seed)
    pid, src = records(rng, n)
    values = corrupt(rng, pid, src)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = []
    for s, name in enumerate(SOURCES):
        idx = np.flatnonzero(src == s)
        idx = idx[rng.permutation(len(idx))]  # the order in a source tells nothing
        fmt = "{}" if name == "crm" else name[0].upper() + "{:07d}"  # crm: 100001, ...
        key = np.array([fmt.format(i + (name == "crm") * 100000) for i in range(1, len(idx) + 1)])
        key = key.astype(OBJ)
        table = source_table(rng, name, {k: v[idx] for k, v in values.items()}, key)
        if name == "shop":
            pq.write_table(table, out_dir / "shop.parquet")
        else:
            pacsv.write_csv(table, out_dir / f"{name}.csv")
        truth.append(pa.table({"source": [name] * len(idx), "key": key, "person_id": pid[idx]}))
    pq.write_table(pa.concat_tables(truth), out_dir / "truth.parquet")
    return {"records": len(pid), "persons": len(np.unique(pid))}


if __name__ == "__main__":
    print(generate(int(sys.argv[1]), Path(sys.argv[2])))
