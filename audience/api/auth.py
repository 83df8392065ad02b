"""API keys and the audit log, both SQLite files in the workspace.

A key is shown once, as `aud_<id>_<secret>`; the store keeps only an argon2 hash of the
secret. Argon2 is slow on purpose (tens of milliseconds), so a key that verified once is
remembered in memory by the SHA-256 of the whole token. Revoking a key bumps a generation
counter in the store: every process (uvicorn worker, CLI) reads it at most once per
`check_interval` seconds and forgets revoked keys, so a revocation takes effect everywhere
within about a second, and at once in the process that revoked it.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from audience.runs import utc_now

ROLES = ("viewer", "contributor", "administrator")  # each role can do what the ones before can
KEYS_FILE = "api_keys.sqlite"
AUDIT_FILE = "audit.sqlite"
TOKEN_PREFIX = "aud"
MAX_TOKEN_LENGTH = 256

# Remembered verifications. Good ones are bounded by the number of keys in practice; bad
# ones are whatever callers send, so they are few, short-lived and evicted oldest first.
GOOD_CACHE_SIZE = 10_000
BAD_CACHE_SIZE = 4_096
BAD_CACHE_S = 60.0
LAST_USED_EVERY_S = 60.0
_SQLITE_MAX = 2**63 - 1  # the largest integer SQLite takes


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and name, and its role."""

    key_id: str
    name: str
    role: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def parse_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    # The id is hex and the prefix has no '_', so the first two underscores split it; the
    # secret (token_urlsafe) may itself contain '_'.
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class _Database:
    """A SQLite file in WAL mode; one short-lived connection per operation, so it is safe
    from any thread and any process."""

    def __init__(self, path: Path, schema: str, synchronous: str = "NORMAL"):
        self.path = path
        self.synchronous = synchronous
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(schema)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute(f"PRAGMA synchronous={self.synchronous}")
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as con:
            # IMMEDIATE: take the write lock up front, so two writers queue instead of one
            # failing half-way with "database is locked".
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")


_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT,
    last_used TEXT
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', 0);
"""


class KeyStore:
    """API keys: create, list, revoke, and verify a caller's token."""

    def __init__(self, path: Path, *, check_interval: float = 1.0):
        self._db = _Database(path, _KEYS_SCHEMA)
        self.path = path
        self.check_interval = check_interval
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()
        self._good: OrderedDict[bytes, Principal] = OrderedDict()
        self._bad: OrderedDict[bytes, float] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._revocations = 0  # revocations seen by this process
        self._generation = self._read_generation()
        self._checked = time.monotonic()

    def create(self, name: str, role: str) -> tuple[Principal, str]:
        """A new key; the token returned is the only copy of its secret."""
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise ValueError("a key needs a name of 1 to 100 printable characters")
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}'; roles are {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._db.transaction() as con:
            con.execute(
                "INSERT INTO keys (id, name, role, hash, created) VALUES (?, ?, ?, ?, ?)",
                (key_id, name, role, self._hasher.hash(secret), utc_now()),
            )
        return Principal(key_id, name, role), f"{TOKEN_PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        """Revoke a key: True if it was active, False if it was already revoked.
        Raises KeyError for an unknown id."""
        with self._db.transaction() as con:
            row = con.execute("SELECT revoked FROM keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                raise KeyError(key_id)
            if row["revoked"] is not None:
                return False
            con.execute("UPDATE keys SET revoked = ? WHERE id = ?", (utc_now(), key_id))
            con.execute("UPDATE meta SET value = value + 1 WHERE name = 'generation'")
        with self._lock:
            self._revocations += 1
            self._forget(lambda p: p.key_id == key_id)
        return True

    def get(self, key_id: str) -> dict[str, Any] | None:
        """One key as in list(), or None."""
        with self._db.connect() as con:
            row = con.execute(
                "SELECT id, name, role, created, revoked, last_used FROM keys WHERE id = ?",
                (key_id,),
            ).fetchone()
        return dict(row) if row else None

    def list(self) -> list[dict[str, Any]]:
        """Every key, oldest first: id, name, role, created, revoked, last_used."""
        with self._db.connect() as con:
            rows = con.execute(
                "SELECT id, name, role, created, revoked, last_used FROM keys "
                "ORDER BY created, rowid"
            ).fetchall()
        return [dict(r) for r in rows]

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before (no hashing: safe on the event loop);
        None when it must go through `verify`."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        self._sync()
        digest = _digest(token)
        with self._lock:
            principal = self._good.get(digest)
        if principal is not None:
            self._touch(principal.key_id, time.monotonic())
        return principal

    def verify(self, token: str) -> Principal | None:
        """The key's principal if the token is a valid, unrevoked key; else None."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        self._sync()
        digest = _digest(token)
        now = time.monotonic()
        with self._lock:
            principal = self._good.get(digest)
            if principal is not None:
                self._good.move_to_end(digest)
            elif digest in self._bad and now - self._bad[digest] < BAD_CACHE_S:
                return None
            revocations = self._revocations
        if principal is not None:
            self._touch(principal.key_id, now)
            return principal
        principal = self._check(token)
        with self._lock:
            if principal is None:
                self._bad[digest] = now
                self._bad.move_to_end(digest)
                while len(self._bad) > BAD_CACHE_SIZE:
                    self._bad.popitem(last=False)
                return None
            stale = revocations != self._revocations
            if not stale:
                self._good[digest] = principal
                while len(self._good) > GOOD_CACHE_SIZE:
                    self._good.popitem(last=False)
        if stale:
            # A key was revoked while this one was checked: ask the store again, remember
            # nothing (the cache must never outlive a revocation).
            key = self.get(principal.key_id)
            if key is None or key["revoked"] is not None:
                return None
        self._touch(principal.key_id, now)
        return principal

    def _check(self, token: str) -> Principal | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._db.connect() as con:
            row = con.execute(
                "SELECT name, role, hash, revoked FROM keys WHERE id = ?", (key_id,)
            ).fetchone()
        if row is None or row["revoked"] is not None:
            return None
        try:
            self._hasher.verify(row["hash"], secret)
        except (VerificationError, InvalidHashError):
            return None
        return Principal(key_id, row["name"], row["role"])

    def _read_generation(self) -> int:
        with self._db.connect() as con:
            row = con.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()
        return int(row["value"]) if row else 0

    def _sync(self) -> None:
        """Forget keys revoked by another process (checked at most every check_interval)."""
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            return
        self._checked = now
        generation = self._read_generation()
        if generation == self._generation:
            return
        with self._db.connect() as con:
            active = {r["id"] for r in con.execute("SELECT id FROM keys WHERE revoked IS NULL")}
        with self._lock:
            self._revocations += 1
            self._forget(lambda p: p.key_id not in active)
            self._generation = generation

    def _forget(self, drop: Callable[[Principal], bool]) -> None:
        for digest in [d for d, p in self._good.items() if drop(p)]:
            del self._good[digest]

    def _touch(self, key_id: str, now: float) -> None:
        # A write per request would serialise every worker on SQLite's write lock; the time
        # a key was last used only needs to be right to the minute.
        if now - self._touched.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._touched[key_id] = now
        try:
            with self._db.connect() as con:
                con.execute("UPDATE keys SET last_used = ? WHERE id = ?", (utc_now(), key_id))
        except sqlite3.OperationalError:
            pass  # busy: the next use will record it


_AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    key_id TEXT,
    key_name TEXT,
    role TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
"""


def _json_safe(value: Any) -> Any:
    # Entries are read back as JSON for the API, which has no NaN or Infinity.
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class AuditLog:
    """Who did what, when: one durable row per write or administrative action."""

    def __init__(self, path: Path):
        # FULL: a record is on disk when record() returns, even if the machine then fails.
        self._db = _Database(path, _AUDIT_SCHEMA, synchronous="FULL")
        self.path = path

    def record(
        self,
        principal: Principal | None,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append an entry; `principal` None is the system (the schedule, the command line)."""
        row = (
            datetime.now(UTC).isoformat(timespec="milliseconds"),
            principal.key_id if principal else None,
            principal.name if principal else None,
            principal.role if principal else None,
            action,
            target,
            json.dumps(_json_safe(detail), default=str) if detail is not None else None,
        )
        with self._db.transaction() as con:
            con.execute(
                "INSERT INTO audit (ts, key_id, key_name, role, action, target, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def entries(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Entries, newest first."""
        with self._db.connect() as con:
            rows = con.execute(
                "SELECT seq, ts, key_id, key_name, role, action, target, detail FROM audit "
                "ORDER BY seq DESC LIMIT ? OFFSET ?",
                (min(max(limit, 0), _SQLITE_MAX), min(max(offset, 0), _SQLITE_MAX)),
            ).fetchall()
        out = []
        for r in rows:
            entry = dict(r)
            entry["detail"] = json.loads(entry["detail"]) if entry["detail"] else None
            out.append(entry)
        return out
