"""A Confluent-compatible schema registry as an option: the codec's ``SchemaIds`` over REST.

Tether's default wire format is Avro single-object encoding, with ``schemas/`` as its registry
(``codec.py``): nothing depends on a registry service. For interop with the Kafka ecosystem
(Kafka Connect sinks, ksqlDB, registry-aware consumers and UIs), a deployment can choose the
Confluent wire format instead (``TETHER_WIRE_FORMAT=confluent`` and
``TETHER_SCHEMA_REGISTRY_URL``): each message is ``00`` + a 4-byte schema id + the Avro body, and
the schemas live in the registry.

The REST contract implemented against (Confluent Schema Registry API v1, which Karapace and
Apicurio's ccompat API implement too), content type ``application/vnd.schemaregistry.v1+json``:

- ``PUT /config/{subject}`` ``{"compatibility": "BACKWARD_TRANSITIVE"}`` — set once per subject
  before the first registration, so the registry itself refuses a schema change that could not
  read every earlier version (the evolution rule of DESIGN.md);
- ``POST /subjects/{subject}/versions`` ``{"schema": "<json>"}`` -> ``{"id": N}`` — idempotent:
  registering a schema already there returns its id; 409 means incompatible, 422 invalid;
- ``GET /schemas/ids/{id}`` -> ``{"schema": "<json>"}`` — a writer schema by id (immutable, so
  cached for the process).

Subjects follow the RecordNameStrategy: one subject per message type, named by its Avro full name
(``tether.ChangeEvent``), because a Tether message type is the same on every topic that carries
it. Registry credentials (HTTP basic, as Confluent Cloud and Karapace use) come from settings;
the password is a ``SecretStr`` and never appears in errors.

Errors: a refused schema (409/422) is a :class:`ContractError` (not retriable: a deployment
problem); an unreachable registry or a 5xx is a :class:`TransportError`, retried with back-off
(tenacity) a few times first. An id the registry does not know is a ``DecodeError`` (the payload
becomes a dead letter, like an unknown fingerprint).

Imports: httpx, tenacity, fastavro and the core codec/errors/settings.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import fastavro
import httpx
from pydantic import SecretStr
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.core.codec import NAMESPACE, AvroCodec, Schema, default_registry
from services.core.errors import ContractError, DecodeError, TransportError
from services.core.settings import TetherSettings

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY = "BACKWARD_TRANSITIVE"

_retry = retry(
    retry=retry_if_exception_type(TransportError),
    wait=wait_exponential(multiplier=0.2, max=5),
    stop=stop_after_attempt(5),
    reraise=True,
)


def subject_for(message_type: str) -> str:
    """The RecordNameStrategy subject of a Tether message type."""
    return f"{NAMESPACE}.{message_type}"


class RegistrySchemaIds:
    """Schema ids from a Confluent-compatible registry (implements ``codec.SchemaIds``)."""

    def __init__(
        self,
        url: str,
        username: str = "",
        password: SecretStr | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        auth = None
        if username:
            auth = httpx.BasicAuth(username, password.get_secret_value() if password else "")
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            auth=auth,
            timeout=timeout,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
            transport=transport,
        )
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Schema] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    @_retry
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise TransportError(f"schema registry unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransportError(f"schema registry answered {response.status_code} on {path}")
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise ContractError(
                f"schema registry refused the credentials ({response.status_code}): check "
                "TETHER_SCHEMA_REGISTRY_USERNAME / tether_schema_registry_password"
            )
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))[:300]
            except ValueError:
                message = ""
            raise ContractError(
                f"schema registry refused {method} {path} ({response.status_code}): {message}"
            )
        return response.json()

    def id_for(self, message_type: str, schema: Schema) -> int:
        text = json.dumps(schema, separators=(",", ":"), sort_keys=True)
        key = (message_type, text)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        subject = subject_for(message_type)
        self._call("PUT", f"/config/{subject}", {"compatibility": COMPATIBILITY})
        answer = self._call("POST", f"/subjects/{subject}/versions", {"schema": text})
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise ContractError(f"schema registry gave no id for {subject}")
        with self._lock:
            self._ids[key] = answer["id"]
            self._schemas.setdefault(answer["id"], fastavro.parse_schema(schema))
        return int(answer["id"])

    def schema_for(self, schema_id: int) -> Schema:
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        if not isinstance(answer, dict) or "schema" not in answer:
            raise DecodeError(f"schema id {schema_id} is unknown to the schema registry")
        try:
            parsed = fastavro.parse_schema(json.loads(answer["schema"]))
        except (ValueError, TypeError, fastavro.schema.SchemaParseException) as exc:
            raise DecodeError(f"schema id {schema_id}: not an Avro schema") from exc
        with self._lock:
            self._schemas[schema_id] = parsed
        return parsed


def codec_from(settings: TetherSettings) -> AvroCodec:
    """The codec a service uses: single-object by default, Confluent framing when configured."""
    if settings.wire_format == "single-object":
        return AvroCodec(default_registry())
    if not settings.schema_registry_url:
        raise ContractError("TETHER_WIRE_FORMAT=confluent needs TETHER_SCHEMA_REGISTRY_URL")
    return AvroCodec(
        default_registry(),
        RegistrySchemaIds(
            settings.schema_registry_url,
            settings.schema_registry_username,
            settings.schema_registry_password,
        ),
    )
