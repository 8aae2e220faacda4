"""Verify and parse Wix contact webhooks (the body is an RS256 JWT, reference §7.2-7.3).

What it is for: the extractor's webhook receiver calls ``verify_and_parse(body, public_key_pem)``
and answers 200 for a ``ContactWebhookEvent`` and 401 for ``WebhookRejectedError``. Parsing is pure:
no I/O, no clock except PyJWT's ``exp`` check.

Nesting (as the official SDK parses it): JWT claims ``{"data": <str>, "iat", "exp"}`` ->
``json.loads(claims["data"])`` = envelope ``{eventType, instanceId, data: <str>, identity: <str>}``
-> ``json.loads(envelope["data"])`` = domain event ``{id, entityFqdn, slug, entityId, eventTime,
createdEvent|updatedEvent|deletedEvent|actionEvent, originatedFrom?, entityEventSequence?}``.
Both wire variants are accepted: object (``createdEvent.entity``, ``updatedEvent.currentEntity``,
``deletedEvent.deletedEntity``, ``actionEvent.body``) and the older stringified ones
(``entityAsJson``, ``currentEntityAsJson``, ``deletedEntityAsJson``, ``bodyAsJson``). The merge slug
is ``merged`` (also ``merge``, as one Wix page spells it).

Rejection reasons (``WebhookRejectedError.reason``): ``bad_signature``, ``expired``,
``not_yet_valid``, ``malformed`` (not a JWT / bad JSON nesting / missing fields),
``unsupported_event`` (not a contact v4 event). Messages never contain personal data.

Imports: standard library, PyJWT and ``services.core.errors`` only — no HTTP, no simulator.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import jwt
from jwt.algorithms import RSAAlgorithm
from jwt.types import Options

from services.core.errors import ConfigurationError, TetherError

__all__ = [
    "EVENT_TYPES",
    "ContactWebhookEvent",
    "EventKind",
    "WebhookRejectedError",
    "verify_and_parse",
]

EventKind = Literal["created", "updated", "deleted", "merged"]

#: eventType of every contact v4 event, by kind.
EVENT_TYPES: dict[EventKind, str] = {
    "created": "wix.contacts.v4.contact_created",
    "updated": "wix.contacts.v4.contact_updated",
    "deleted": "wix.contacts.v4.contact_deleted",
    "merged": "wix.contacts.v4.contact_merged",
}
ENTITY_FQDN = "wix.contacts.v4.contact"

_KIND_BY_SLUG: dict[str, EventKind] = {
    "created": "created",
    "updated": "updated",
    "deleted": "deleted",
    "merged": "merged",
    "merge": "merged",
}
_KIND_BY_EVENT_TYPE: dict[str, EventKind] = {v: k for k, v in EVENT_TYPES.items()}
_KIND_BY_EVENT_TYPE["wix.contacts.v4.contact_merge"] = "merged"

RejectReason = Literal[
    "bad_signature", "expired", "not_yet_valid", "malformed", "unsupported_event"
]


class WebhookRejectedError(TetherError):
    """The webhook body is not an authentic, well-formed contact event; answer 401, do not retry."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"wix webhook rejected ({reason}): {detail}", retriable=False)
        self.reason: RejectReason = reason

    @property
    def code(self) -> str:
        return f"WebhookRejected.{self.reason}"


@dataclass(frozen=True)
class ContactWebhookEvent:
    """One verified contact event.

    ``event_id`` is Wix's domain-event id (use it to drop duplicate deliveries). ``entity_id`` is
    the contact id (for ``merged`` the target). ``contact`` is the contact as of the event (wire
    dict) when the event carries one: created, updated and merged (the target) — deleted events
    carry none unless Wix sends ``deletedEntity``. Never trust ``contact["revision"]`` for writes.
    """

    event_id: str
    kind: EventKind
    event_type: str
    entity_id: str
    event_time: datetime
    instance_id: str | None
    contact: dict[str, Any] | None = None
    source_contact_ids: tuple[str, ...] = ()
    originated_from: str | None = None
    entity_event_sequence: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)


def verify_and_parse(
    body: bytes | str,
    public_key_pem: str,
    *,
    leeway_seconds: float = 10.0,
    audience: str | None = None,
) -> ContactWebhookEvent:
    """Verify the JWT signature (RS256 only) and expiry, then decode the nested event.

    ``audience``: when given, the token must carry that ``aud`` (the app id); by default ``aud``
    is not checked because Wix does not document it for webhooks.
    """
    token = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    token = token.strip()
    options: Options = {"require": ["exp", "data"], "verify_aud": audience is not None}
    try:
        claims = jwt.decode(
            token,
            _verification_key(public_key_pem),
            algorithms=["RS256"],
            leeway=leeway_seconds,
            audience=audience,
            options=options,
        )
    except jwt.InvalidKeyError:
        raise ConfigurationError("wix webhook public key is not a usable RSA key") from None
    except jwt.ExpiredSignatureError:
        raise WebhookRejectedError("expired", "token expired") from None
    except jwt.ImmatureSignatureError:
        raise WebhookRejectedError("not_yet_valid", "token not valid yet") from None
    except jwt.InvalidSignatureError:
        raise WebhookRejectedError("bad_signature", "signature does not verify") from None
    except jwt.InvalidAlgorithmError:
        raise WebhookRejectedError("bad_signature", "algorithm is not RS256") from None
    except (jwt.DecodeError, jwt.MissingRequiredClaimError, jwt.InvalidTokenError) as exc:
        raise WebhookRejectedError("malformed", type(exc).__name__) from None
    return parse_claims(claims)


def _verification_key(public_key_pem: str) -> Any:
    """The key ``jwt.decode`` verifies with: the PEM loaded once (loading it is most of the cost
    of a verification); an unusable PEM as it is, so that ``jwt.decode`` rejects it exactly
    where it always did (after the token's own checks)."""
    try:
        return _loaded_key(public_key_pem)
    except (jwt.InvalidKeyError, TypeError):
        return public_key_pem


@lru_cache(maxsize=16)
def _loaded_key(public_key_pem: str) -> Any:
    return RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(public_key_pem)


def parse_claims(claims: dict[str, Any]) -> ContactWebhookEvent:
    """Decode already-verified JWT claims into a ``ContactWebhookEvent`` (pure)."""
    envelope = _json_object(claims.get("data"), "claims.data")
    event_type = envelope.get("eventType")
    if not isinstance(event_type, str):
        raise WebhookRejectedError("malformed", "envelope has no eventType")
    domain = _json_object(envelope.get("data"), "envelope.data")
    identity_raw = envelope.get("identity")
    identity = _json_object(identity_raw, "envelope.identity") if identity_raw else {}

    slug = domain.get("slug")
    kind = _KIND_BY_SLUG.get(slug) if isinstance(slug, str) else None
    kind = kind or _KIND_BY_EVENT_TYPE.get(event_type)
    if kind is None or not event_type.startswith("wix.contacts.v4."):
        raise WebhookRejectedError("unsupported_event", "not a contact v4 event")

    event_id = _required_str(domain, "id")
    entity_id = _required_str(domain, "entityId")
    event_time = _parse_time(_required_str(domain, "eventTime"))
    contact: dict[str, Any] | None = None
    sources: tuple[str, ...] = ()
    if kind == "created":
        contact = _entity(domain.get("createdEvent"), "entity")
    elif kind == "updated":
        contact = _entity(domain.get("updatedEvent"), "currentEntity")
    elif kind == "deleted":
        contact = _entity(domain.get("deletedEvent"), "deletedEntity", required=False)
    else:
        body = _entity(domain.get("actionEvent"), "body")
        assert body is not None
        raw_sources = body.get("sourceContactIds")
        if not isinstance(raw_sources, list) or not all(isinstance(s, str) for s in raw_sources):
            raise WebhookRejectedError("malformed", "merge body has no sourceContactIds list")
        sources = tuple(raw_sources)
        target = body.get("targetContact")
        contact = target if isinstance(target, dict) else None
        target_id = body.get("targetContactId")
        if isinstance(target_id, str):
            entity_id = target_id
    if kind in ("created", "updated") and contact is None:
        raise WebhookRejectedError("malformed", f"{kind} event carries no entity")

    instance_id = envelope.get("instanceId")
    originated = domain.get("originatedFrom")
    sequence = domain.get("entityEventSequence")
    return ContactWebhookEvent(
        event_id=event_id,
        kind=kind,
        event_type=event_type,
        entity_id=entity_id,
        event_time=event_time,
        instance_id=instance_id if isinstance(instance_id, str) else None,
        contact=contact,
        source_contact_ids=sources,
        originated_from=originated if isinstance(originated, str) else None,
        entity_event_sequence=str(sequence) if sequence is not None else None,
        identity=identity,
    )


def _json_object(value: object, where: str) -> dict[str, Any]:
    """``value`` as a JSON object: a dict as is, a string parsed (Wix nests stringified JSON)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise WebhookRejectedError("malformed", f"{where} is not valid JSON") from None
    if not isinstance(value, dict):
        raise WebhookRejectedError("malformed", f"{where} is not a JSON object")
    return value


def _entity(wrapper: object, name: str, *, required: bool = True) -> dict[str, Any] | None:
    """``wrapper[name]`` (object variant) or ``wrapper[name + "AsJson"]`` (stringified variant)."""
    if not isinstance(wrapper, dict):
        if required:
            raise WebhookRejectedError("malformed", f"event body for {name} is missing")
        return None
    if isinstance(wrapper.get(name), dict):
        entity: dict[str, Any] = wrapper[name]
        return entity
    if isinstance(wrapper.get(name + "AsJson"), str):
        return _json_object(wrapper[name + "AsJson"], name + "AsJson")
    if required:
        raise WebhookRejectedError("malformed", f"event has neither {name} nor {name}AsJson")
    return None


def _required_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookRejectedError("malformed", f"domain event has no {key}")
    return value


def _parse_time(value: str) -> datetime:
    """ISO-8601 with ``Z`` and up to nanosecond digits (Wix sends micro- or nanoseconds)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, tail))
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookRejectedError("malformed", "eventTime is not ISO-8601") from None
    if parsed.tzinfo is None:
        raise WebhookRejectedError("malformed", "eventTime has no time zone")
    return parsed
