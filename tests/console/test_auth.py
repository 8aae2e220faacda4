"""Pure tests of the console's authentication pieces: token entries, verifiers, JWT, sessions,
rate limits, and the read-only views (privacy)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.console import privacy
from services.console.auth import (
    Identity,
    JwtVerifier,
    RateLimits,
    Role,
    Sessions,
    TokenVerifier,
    Verifiers,
    bearer_token,
    parse_token_entries,
)
from services.core.errors import ConfigurationError

TOKEN = "a-long-enough-token-0001"


def test_token_entries_plain_and_hashed() -> None:
    digest = hashlib.sha256(b"another-long-token-0002").hexdigest()
    entries = parse_token_entries(f"alice:operator:{TOKEN}, # comment\nbob:read:sha256:{digest}")
    verifier = TokenVerifier(entries)
    assert verifier.verify(TOKEN) == Identity("alice", Role.OPERATOR, "token")
    assert verifier.verify("another-long-token-0002") == Identity("bob", Role.READ, "token")
    assert verifier.verify("a-long-enough-token-0003") is None
    assert TOKEN not in repr(entries) and digest not in repr(entries)


@pytest.mark.parametrize(
    "text",
    [
        "alice:admin:a-long-enough-token-0001",  # unknown role
        "alice:operator:short",  # too short to be a secret
        "alice:operator:sha256:abcd",  # not a digest
        "alice:operator",  # no secret
        f"alice:read:{TOKEN}\nalice:operator:{TOKEN}x",  # a name twice
    ],
)
def test_bad_token_entries_are_refused_without_echoing_the_secret(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_token_entries(text)
    assert TOKEN not in str(caught.value) and "short" not in str(caught.value).split(":")[-1]


def test_bearer_header() -> None:
    assert bearer_token(f"Bearer {TOKEN}") == TOKEN
    assert bearer_token(f"bearer  {TOKEN} ") == TOKEN
    assert bearer_token(f"Basic {TOKEN}") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


@pytest.fixture(scope="module")
def keys() -> tuple[Any, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private, private.public_key()


def make_jwt(private: Any, **claims: Any) -> str:
    payload = {"sub": "carol", "exp": int(time.time()) + 60, "iss": "idp", "aud": "tether"}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, private, "RS256")


def test_jwt_verifier(keys: tuple[Any, Any]) -> None:
    private, public = keys
    verifier = JwtVerifier(
        "https://idp.example/jwks", issuer="idp", audience="tether", key_source=lambda _: public
    )
    ok = make_jwt(private, tether_role=["read", "operator"])
    assert verifier.verify(ok) == Identity("carol", Role.OPERATOR, "jwt")
    assert verifier.verify(make_jwt(private, tether_role="read")).role is Role.READ  # type: ignore[union-attr]
    refused = [
        make_jwt(private),  # no role
        make_jwt(private, tether_role="admin"),
        make_jwt(private, tether_role="read", exp=int(time.time()) - 120),
        make_jwt(private, tether_role="read", aud="someone-else"),
        make_jwt(private, tether_role="read", iss="evil"),
        make_jwt(private, tether_role="read", exp=None),  # exp is required
        make_jwt(
            rsa.generate_private_key(public_exponent=65537, key_size=2048), tether_role="read"
        ),
        jwt.encode({"sub": "x", "tether_role": "operator", "exp": 9999999999}, "k" * 32, "HS256"),
        "not.a.jwt",
        TOKEN,
    ]
    for token in refused:
        assert verifier.verify(token) is None, token


def test_verifiers_chain_tries_each(keys: tuple[Any, Any]) -> None:
    private, public = keys
    chain = Verifiers(
        [
            TokenVerifier(parse_token_entries(f"alice:operator:{TOKEN}")),
            JwtVerifier("unused", key_source=lambda _: public),
        ]
    )
    assert chain.verify(TOKEN).name == "alice"  # type: ignore[union-attr]
    assert chain.verify(make_jwt(private, tether_role="read", aud=None)).name == "carol"  # type: ignore[union-attr]
    assert chain.verify("") is None


def test_sessions_sign_expire_and_bind_csrf() -> None:
    now = [1000.0]
    sessions = Sessions(b"s" * 32, 60, clock=lambda: now[0])
    cookie = sessions.issue(Identity("alice", Role.OPERATOR))
    identity, nonce = sessions.read(cookie)  # type: ignore[misc]
    assert identity == Identity("alice", Role.OPERATOR, "session")
    assert sessions.check_csrf(nonce, sessions.csrf_token(nonce))
    other_nonce = sessions.read(sessions.issue(Identity("alice", Role.OPERATOR)))[1]  # type: ignore[index]
    assert not sessions.check_csrf(nonce, sessions.csrf_token(other_nonce))
    assert not sessions.check_csrf(nonce, None)
    body, _, signature = cookie.partition(".")
    assert sessions.read(body + "." + signature[:-2] + "AA") is None  # tampered
    assert Sessions(b"t" * 32, 60, clock=lambda: now[0]).read(cookie) is None  # other secret
    now[0] += 61
    assert sessions.read(cookie) is None  # expired


def test_rate_limits_are_per_key() -> None:
    limits = RateLimits(2)
    assert [limits.allow("a") for _ in range(3)] == [True, True, False]
    assert limits.allow("b")


def test_privacy_allow_lists_leave_values_out() -> None:
    member = {
        "key": "wix:contacts:c-1",
        "system": "wix",
        "id": "c-1",
        "observed": {"props": {"email": "ola@example.no"}, "source_ts": "t"},
        "written": {"props": {"phone": "+4791234567"}, "command_id": "c", "at": "t"},
        "pending": None,
        "rejected": {"email": "bad@x"},
        "last_error": {"outcome": "rejected", "code": "X", "message": "ola@example.no bad"},
        "new_field_with_personal_data": "ola@example.no",
    }
    shown = privacy.member(member)
    assert "ola@example.no" not in str(shown) and "+4791234567" not in str(shown)
    assert shown["observed"]["properties"] == ["email"] and shown["rejected"] == ["email"]
    entry = {
        "kind": "action",
        "at": "t",
        "why": "Ola called",
        "reason": "x",
        "fields": [{"property": "email", "before": "a@b.no", "after": "c@d.no"}],
        "error_message": "a@b.no",
    }
    assert privacy.timeline_entry(entry) == {
        "kind": "action",
        "at": "t",
        "fields": [{"property": "email"}],
    }


def test_jwt_verifier_reads_the_keys_from_a_jwks_url(keys: tuple[Any, Any]) -> None:
    """The OIDC path as configured (``console_jwks_url``): PyJWKClient over real HTTP."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    private, public = keys
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwks = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        verifier = JwtVerifier(f"http://127.0.0.1:{server.server_port}/jwks", audience="tether")
        token = jwt.encode(
            {"sub": "carol", "exp": int(time.time()) + 60, "aud": "tether", "tether_role": "read"},
            private,
            "RS256",
            headers={"kid": "k1"},
        )
        assert verifier.verify(token) == Identity("carol", Role.READ, "jwt")
        unknown_key = jwt.encode(
            {"sub": "x", "exp": int(time.time()) + 60, "aud": "tether", "tether_role": "read"},
            private,
            "RS256",
            headers={"kid": "k2"},
        )
        assert verifier.verify(unknown_key) is None
    finally:
        server.shutdown()
