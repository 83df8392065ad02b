"""How each generated source writes its records: column names and value formats.

- crm.csv: contact_id, first_name, last_name, email, phone, street, city, zip, birth_date (ISO);
- shop.parquet: account_id, full_name ("First [M] Last"), email_address, mobile, address_line
  ("12 Oak Street Apt 4"), postcode (sometimes ZIP+4), dob (a date);
- loyalty.csv: member_no, given_name, family_name, e_mail, tel, addr (often "..., Town ST"),
  zip_code, birthday ("MM/DD/YYYY"); a quarter of its rows in capitals.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

try:
    from . import names
except ImportError:  # run as a script
    import names  # type: ignore[no-redef]

SOURCES = ("crm", "shop", "loyalty")
MIDDLE_INITIAL = 0.08  # shop's full_name "John A Smith"
UPPER_CASE = 0.25  # loyalty names and addresses in capitals
ZIP_PLUS4 = 0.05  # shop postcodes as "12345-6789"
TOWN_IN_ADDR = 0.70  # loyalty addr ending in ", Town ST"

OBJ = object
PAD2, PAD4 = (np.array([f"{i:0{w}d}" for i in range(10**w)], dtype=OBJ) for w in (2, 4))
CITY, STATE = np.array([c.split("|")[:2] for c in names.CITIES], dtype=OBJ).T
LETTERS = np.array(list("ABCDEFGHJKLMNPRSTW"), dtype=OBJ)
upper = np.frompyfunc(lambda s: s and s.upper(), 1, 1)  # None stays None
cat = np.frompyfunc(lambda a, b: a and a + b, 2, 1)  # a + b, None stays None


def source_table(rng: np.random.Generator, name: str, v: dict, key: np.ndarray) -> pa.Table:
    """One source's records (v: the corrupt() values of its records) in its own format."""
    n = len(key)
    iso = PAD4[v["y"]] + "-" + PAD2[v["m"]] + "-" + PAD2[v["d"]]
    iso[v["no_dob"]] = None
    if name == "crm":
        cols = {"contact_id": key.astype(int), "first_name": v["first"], "last_name": v["last"],
                "email": v["email"], "phone": v["tel"], "street": v["street"],
                "city": CITY[v["city"]], "zip": v["zip"], "birth_date": iso}  # fmt: skip
    elif name == "shop":
        mid = np.where(rng.random(n) < MIDDLE_INITIAL, " " + LETTERS[rng.integers(0, 18, n)], "")
        plus4 = np.where(rng.random(n) < ZIP_PLUS4, "-" + PAD4[rng.integers(0, 10**4, n)], "")
        cols = {"account_id": key, "full_name": v["first"] + mid + " " + v["last"],
                "email_address": v["email"], "mobile": v["tel"], "address_line": v["street"],
                "postcode": cat(v["zip"], plus4),
                "dob": pa.array(iso, pa.string()).cast(pa.date32())}  # fmt: skip
    else:
        caps = rng.random(n) < UPPER_CASE
        c = v["city"]
        town = np.where(rng.random(n) < TOWN_IN_ADDR, ", " + CITY[c] + " " + STATE[c], "")
        addr = cat(v["street"], town)
        bday = PAD2[v["m"]] + "/" + PAD2[v["d"]] + "/" + PAD4[v["y"]]
        bday[v["no_dob"]] = None
        cols = {"member_no": key, "given_name": np.where(caps, upper(v["first"]), v["first"]),
                "family_name": np.where(caps, upper(v["last"]), v["last"]), "e_mail": v["email"],
                "tel": v["tel"], "addr": np.where(caps, upper(addr), addr),
                "zip_code": v["zip"], "birthday": bday}  # fmt: skip
    return pa.table({k: c if isinstance(c, pa.Array) else pa.array(c) for k, c in cols.items()})
