"""`audience init`: a commented starter project that runs as it is."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = Path(__file__).parent / "templates" / "audience.yaml"
SAMPLE_CSV = """customer_id,first_name,last_name,email,phone,birth_date
1,Ada,Lovelace,ada@example.com,+44 20 7946 0018,1815-12-10
2,Alan,Turing,alan.turing@example.com,(020) 7946 0123,1912-06-23
3,Grace,Hopper,grace@example.com,+1 212 555 0142,1906-12-09
"""


def write_starter(folder: Path, force: bool = False) -> list[Path]:
    """Write audience.yaml and data/customers.csv into `folder`; returns the files written."""
    project_file = folder / "audience.yaml"
    if project_file.exists() and not force:
        raise FileExistsError(f"{project_file} already exists")
    folder.mkdir(parents=True, exist_ok=True)
    project_file.write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    written = [project_file]
    sample = folder / "data" / "customers.csv"
    if not sample.exists():
        sample.parent.mkdir(parents=True, exist_ok=True)
        sample.write_text(SAMPLE_CSV, encoding="utf-8")
        written.append(sample)
    return written
