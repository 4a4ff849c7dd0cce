"""Who may open TicketTune: the pure parts (no Streamlit) of sign-in for shared deployments.

Three set-ups, read from ``.streamlit/secrets.toml`` (see README → Shared use):

* ``[auth]`` — sign-in through an OpenID Connect provider (Streamlit's ``st.login``);
* ``[tickettune] password_hash = "scrypt$…"`` — one team password, stored only as a salted
  scrypt hash (``python -m core hash-password`` prints the line);
* neither — the app is for this computer only: requests from other machines are refused.

Failed password attempts are rate-limited per client address with exponential back-off.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import ipaddress
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import ConfigError

SECRETS_SECTION = "tickettune"
PASSWORD_KEY = "password_hash"
SCHEME = "scrypt"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MIN_PASSWORD_CHARS = 8
SESSION_ID_BYTES = 16
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")

Mode = Literal["oidc", "password", "local"]


@dataclass(frozen=True)
class AccessSettings:
    """How visitors get in; ``mode`` "local" means nobody from another machine does."""

    mode: Mode
    password_hash: str | None = None

    @classmethod
    def from_secrets(cls, secrets_: Mapping[str, Any]) -> AccessSettings:
        """Read the set-up from Streamlit secrets (or any mapping of the same shape)."""
        section = secrets_.get(SECRETS_SECTION) or {}
        stored = section.get(PASSWORD_KEY) if isinstance(section, Mapping) else None
        if stored:
            _parse(str(stored))  # a malformed hash is a set-up error, said at start
            return cls("password", str(stored))
        if secrets_.get("auth"):
            return cls("oidc")
        return cls("local")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt>$<key>`` (base64): the only form in which a password is stored."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"Choose a password of at least {MIN_PASSWORD_CHARS} characters.")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join([SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash (compared in constant time)."""
    n, r, p, salt, key = _parse(stored)
    return hmac.compare_digest(_derive(password, salt, n, r, p), key)


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=2**27
    )


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.strip().split("$")
    try:
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError
        n, r, p = (int(x) for x in parts[1:4])
        return n, r, p, base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5])
    except ValueError:
        raise ConfigError(
            f"The {PASSWORD_KEY} in .streamlit/secrets.toml is not a TicketTune password hash. "
            "Make a new one with: python -m core hash-password"
        ) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def new_session_id() -> str:
    """A random id for one browser session (kept in its URL, so a refresh keeps it)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: object) -> bool:
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def job_owner(user: str | None, session_id: str) -> str:
    """Who a job belongs to (``JobManager.submit(owner=…)``): the signed-in person when known
    (the same person in another tab or browser sees their job), else this browser session."""
    name = (user or "").strip()
    if name:
        return f"user:{name.casefold()}"
    if not is_session_id(session_id):
        raise ValueError("A job owner needs a signed-in user or a browser session id.")
    return f"session:{session_id}"


def is_local_address(address: str | None) -> bool:
    """True for a loopback address, and for None: Streamlit gives no address for localhost."""
    if address is None:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


class RateLimiter:
    """Failed sign-ins per client: after ``free_failures`` each one doubles the wait.

    One instance is shared by every session of the app (Streamlit's ``cache_resource``), so a
    new browser tab does not reset the count. Thread-safe.
    """

    def __init__(
        self,
        free_failures: int = 5,
        first_wait_s: float = 30.0,
        max_wait_s: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free_failures = free_failures
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """Seconds this client must wait before the next attempt (0 when it may try now)."""
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
        if count < self.free_failures:
            return 0.0
        wait = min(self.max_wait_s, self.first_wait_s * 2 ** (count - self.free_failures))
        return max(0.0, last + wait - self.clock())

    def failed(self, client: str) -> None:
        with self._lock:
            count, _ = self._failures.get(client, (0, 0.0))
            self._failures[client] = (count + 1, self.clock())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def cmd_hash_password(args: argparse.Namespace) -> int:
    """``python -m core hash-password``: ask for a password, print the secrets.toml lines."""
    if sys.stdin.isatty():
        password = getpass.getpass("Team password: ")
        if getpass.getpass("Same password again: ") != password:
            raise ConfigError("The two passwords differ; nothing was printed.")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    print(f'[{SECRETS_SECTION}]\n{PASSWORD_KEY} = "{hash_password(password)}"')
    return 0
