"""Console users and signed session cookies.

Users live in a `users` table of the workspace's API key file (api_keys.sqlite), so the
credentials of a project are in one place. Passwords are kept only as argon2 hashes. A user
has one of the API's roles (viewer, contributor, administrator).

A signed-in browser carries a session cookie signed with a secret kept in the workspace
(`console_secret`, made on first use, readable by its owner only). The cookie names the user
or API key; both are looked up again on every request, so a deleted user or a revoked key
loses access at once, and a changed role takes effect at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from audience.api.auth import ROLES, Principal, _Database
from audience.runs import utc_now

SECRET_FILE = "console_secret"
SESSION_COOKIE = "audience_session"
SESSION_MAX_AGE_S = 12 * 3600
MIN_PASSWORD = 4  # the demo user's password is 'demo'; real deployments pick their own

_USERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created TEXT NOT NULL
);
"""


class UserStore:
    """Console users: create, list, delete, and check a password."""

    def __init__(self, path: Path):
        self._db = _Database(path, _USERS_SCHEMA)
        self.path = path
        self._hasher = PasswordHasher()
        # Checking an unknown name costs a hash too, so timing does not tell which names exist.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def create(self, name: str, role: str, password: str) -> Principal:
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise ValueError("a user needs a name of 1 to 100 printable characters")
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}'; roles are {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        try:
            with self._db.transaction() as con:
                con.execute(
                    "INSERT INTO users (name, role, hash, created) VALUES (?, ?, ?, ?)",
                    (name, role, self._hasher.hash(password), utc_now()),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"a user '{name}' exists already") from None
        return principal_of(name, role)

    def get(self, name: str) -> dict[str, Any] | None:
        with self._db.connect() as con:
            row = con.execute(
                "SELECT name, role, created FROM users WHERE name = ?", (name,)
            ).fetchone()
        return dict(row) if row else None

    def list(self) -> list[dict[str, Any]]:
        with self._db.connect() as con:
            rows = con.execute("SELECT name, role, created FROM users ORDER BY name").fetchall()
        return [dict(r) for r in rows]

    def delete(self, name: str) -> bool:
        with self._db.transaction() as con:
            return con.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0

    def verify(self, name: str, password: str) -> Principal | None:
        """The user's principal when the password is right, else None."""
        with self._db.connect() as con:
            row = con.execute(
                "SELECT name, role, hash FROM users WHERE name = ?", (name.strip(),)
            ).fetchone()
        try:
            self._hasher.verify(row["hash"] if row else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        return principal_of(row["name"], row["role"]) if row else None


def principal_of(name: str, role: str) -> Principal:
    """A console user as the API's Principal; the 'user:' id keeps it apart from key ids."""
    return Principal(f"user:{name}", name, role)


def session_secret(workspace: Path) -> str:
    """The workspace's cookie-signing secret, made on first use. Every worker process reads
    the same file; O_EXCL makes exactly one of them write it."""
    path = workspace / SECRET_FILE
    workspace.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(48))
    for _ in range(50):  # another process may be between creating and writing it
        secret = path.read_text(encoding="utf-8").strip()
        if secret:
            return secret
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty; delete it to make a new session secret")


class Sessions:
    """Sign and read the session cookie's value: {"user": name} or {"key": key id}."""

    def __init__(self, secret: str):
        self._signer = URLSafeTimedSerializer(secret, salt="audience-console-session")

    def dump(self, data: dict[str, str]) -> str:
        return self._signer.dumps(data)

    def load(self, value: str | None) -> dict[str, str] | None:
        if not value:
            return None
        try:
            data = self._signer.loads(value, max_age=SESSION_MAX_AGE_S)
        except BadSignature:  # also expired (SignatureExpired is a BadSignature)
            return None
        return data if isinstance(data, dict) else None
