"""Who is calling: identities, roles, token/JWT verification, rate limits, sessions and CSRF.

* :class:`Identity` — a caller's ``name`` (logged with each action: an operator's chosen name or
  the JWT's subject, never personal data) and :class:`Role`: ``read`` sees counts, ids and
  states; ``operator`` also sees personal data and may act.
* :class:`TokenVerifier` — bearer tokens from a secret (``name:role:secret`` lines). Only the
  SHA-256 of each token is kept; a presented token's digest is compared with **every** entry
  with ``hmac.compare_digest`` (constant time, no early exit, so timing tells nothing).
* :class:`JwtVerifier` — OIDC-ready: a JWT signed by a key of the identity provider's JWKS
  (``pyjwt``'s ``PyJWKClient``, keys cached), issuer/audience checked, role from a claim.
* :class:`Verifiers` — tries each verifier in turn (the pluggable point: add one for another
  scheme without touching the routes).
* :class:`RateLimits` — ``pyrate-limiter`` per identity (one small limiter per key, bounded).
* :class:`Sessions` — the web console's signed session cookie and the CSRF token derived from
  it (HMAC-SHA256 with ``console_session_secret``).

Pure apart from ``JwtVerifier`` fetching the JWKS. Imports: standard library, pyjwt,
pyrate-limiter and ``services.core.errors``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import jwt
from pyrate_limiter import Duration, Limiter, Rate

from services.core.errors import ConfigurationError


class Role(StrEnum):
    READ = "read"
    """Counts, ids, states and reasons; never names, e-mails, phones or field values."""
    OPERATOR = "operator"
    """Everything ``read`` sees, personal data, and the actions."""


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    method: str = "token"  # token | jwt | session

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR


class Verifier(Protocol):
    def verify(self, token: str) -> Identity | None:
        """The identity a presented credential proves, or None."""
        ...


# ------------------------------------------------------------------------------------------------
# Static bearer tokens
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: Role
    digest: bytes  # SHA-256 of the token

    def __repr__(self) -> str:  # never print a digest either
        return f"TokenEntry(name={self.name!r}, role={self.role.value!r})"


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_token_entries(text: str) -> list[TokenEntry]:
    """``name:role:secret`` entries, one per line or comma-separated; ``#`` starts a comment.

    ``secret`` is the token itself or ``sha256:<64 hex>`` (its digest). Errors name the entry
    by its position and name, never its secret.
    """
    entries: list[TokenEntry] = []
    names: set[str] = set()
    raw = [p.strip() for line in text.splitlines() for p in line.split(",")]
    for position, item in enumerate((p for p in raw if p and not p.startswith("#")), 1):
        name, _, rest = item.partition(":")
        role_text, _, secret = rest.partition(":")
        name = name.strip()
        if not name or not secret:
            raise ConfigurationError(f"console token entry {position} is not name:role:secret")
        try:
            role = Role(role_text.strip())
        except ValueError:
            raise ConfigurationError(
                f"console token entry {position} ({name}): role must be read or operator"
            ) from None
        if name in names:
            raise ConfigurationError(f"console token entry {position}: {name} given twice")
        names.add(name)
        if secret.startswith("sha256:"):
            try:
                digest = bytes.fromhex(secret[len("sha256:") :])
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise ConfigurationError(
                    f"console token entry {position} ({name}): sha256: needs 64 hex digits"
                )
        else:
            if len(secret) < 16:
                raise ConfigurationError(
                    f"console token entry {position} ({name}): tokens need 16+ characters"
                )
            digest = token_digest(secret)
        entries.append(TokenEntry(name, role, digest))
    return entries


class TokenVerifier:
    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        self.entries = tuple(entries)

    def verify(self, token: str) -> Identity | None:
        presented = token_digest(token)
        found: TokenEntry | None = None
        # Every entry is compared (no early exit): the time taken does not depend on which
        # entry, if any, matches.
        for entry in self.entries:
            if hmac.compare_digest(presented, entry.digest):
                found = entry
        return Identity(found.name, found.role, "token") if found is not None else None


# ------------------------------------------------------------------------------------------------
# OIDC / JWT
# ------------------------------------------------------------------------------------------------


class JwtVerifier:
    """Accepts a JWT signed by a key from ``jwks_url`` (asymmetric algorithms only)."""

    ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str = "",
        audience: str = "",
        role_claim: str = "tether_role",
        name_claim: str = "sub",
        key_source: Callable[[str], Any] | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.role_claim = role_claim
        self.name_claim = name_claim
        if key_source is None:
            client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
            key_source = lambda token: client.get_signing_key_from_jwt(token).key  # noqa: E731
        self._key = key_source

    def verify(self, token: str) -> Identity | None:
        if token.count(".") != 2:
            return None
        try:
            key = self._key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.ALGORITHMS),
                issuer=self.issuer or None,
                audience=self.audience or None,
                options={"require": ["exp"], "verify_aud": bool(self.audience)},
            )
        except (jwt.PyJWTError, ValueError):
            return None
        role = role_from_claim(claims.get(self.role_claim))
        name = claims.get(self.name_claim)
        if role is None or not isinstance(name, str) or not name:
            return None
        return Identity(name, role, "jwt")


def role_from_claim(value: Any) -> Role | None:
    """The strongest role a claim grants (a string or a list of strings)."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    roles = {str(v) for v in values}
    if Role.OPERATOR.value in roles:
        return Role.OPERATOR
    if Role.READ.value in roles:
        return Role.READ
    return None


class Verifiers:
    def __init__(self, verifiers: Iterable[Verifier]) -> None:
        self.verifiers = tuple(verifiers)

    def verify(self, token: str) -> Identity | None:
        token = token.strip()
        if not token:
            return None
        for verifier in self.verifiers:
            identity = verifier.verify(token)
            if identity is not None:
                return identity
        return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# ------------------------------------------------------------------------------------------------
# Rate limits
# ------------------------------------------------------------------------------------------------


class RateLimits:
    """``per_minute`` requests per key (an identity's name, or a client address)."""

    def __init__(self, per_minute: int, max_keys: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._limiters: OrderedDict[str, Limiter] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = Limiter(Rate(self.per_minute, Duration.MINUTE))
                self._limiters[key] = limiter
                while len(self._limiters) > self.max_keys:
                    self._limiters.popitem(last=False)
            else:
                self._limiters.move_to_end(key)
        return bool(limiter.try_acquire(key, blocking=False))


# ------------------------------------------------------------------------------------------------
# Web sessions and CSRF
# ------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Signed session cookies: ``<payload>.<hmac>``; the payload holds the identity, a nonce and
    the expiry (no secret: the token itself is never stored in the cookie)."""

    COOKIE = "tether_console"

    def __init__(
        self, secret: bytes | None, lifetime_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.lifetime = lifetime_seconds
        self.clock = clock

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._secret, data, hashlib.sha256).digest())

    def issue(self, identity: Identity) -> str:
        payload = {
            "n": identity.name,
            "r": identity.role.value,
            "m": identity.method,
            "x": int(self.clock() + self.lifetime),
            "s": secrets.token_urlsafe(12),
        }
        data = json.dumps(payload, separators=(",", ":")).encode()
        return f"{_b64(data)}.{self._sign(data)}"

    def read(self, cookie: str | None) -> tuple[Identity, str] | None:
        """``(identity, nonce)`` of a valid, unexpired cookie."""
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.partition(".")
        try:
            data = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(data), signature):
            return None
        try:
            payload = json.loads(data)
            if int(payload["x"]) < self.clock():
                return None
            identity = Identity(str(payload["n"]), Role(payload["r"]), "session")
            return identity, str(payload["s"])
        except (ValueError, KeyError, TypeError):
            return None

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token of a session: bound to it, so another session's token is refused."""
        return self._sign(f"csrf:{nonce}".encode())

    def check_csrf(self, nonce: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(nonce), str(presented))
