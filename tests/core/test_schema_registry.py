"""The Confluent wire format option: the codec over a registry's REST API, and on Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from services.connectors.simkit import ServerThread
from services.core.codec import DEFAULT_SCHEMAS_DIR, MESSAGE_TYPES, AvroCodec
from services.core.errors import ContractError, DecodeError, TransportError
from services.core.kafka import make_producer
from services.core.schema_registry import RegistrySchemaIds, codec_from, subject_for
from services.core.schema_release import load_sample, sample_to_datum
from services.core.settings import TetherSettings
from services.core.topic_reader import tail
from tests.core.test_kafka_postgres import provisioned
from tests.support.schema_registry import FakeSchemaRegistry

SAMPLES = DEFAULT_SCHEMAS_DIR / "samples"
GOLDEN_V1 = DEFAULT_SCHEMAS_DIR / "released" / "v1" / "golden"


@pytest.fixture
def registry() -> Iterator[tuple[FakeSchemaRegistry, str]]:
    fake = FakeSchemaRegistry(username="tether", password="registry-secret")
    with ServerThread(fake.app) as server:
        yield fake, server.url


def _codec(url: str, password: str = "registry-secret") -> AvroCodec:
    return AvroCodec(schema_ids=RegistrySchemaIds(url, "tether", SecretStr(password)))


def test_every_message_type_round_trips_in_the_confluent_framing(
    registry: tuple[FakeSchemaRegistry, str],
) -> None:
    fake, url = registry
    writer = _codec(url)
    payloads = {}
    for message_type in MESSAGE_TYPES:
        datum = sample_to_datum(load_sample(SAMPLES, message_type))
        payload = writer.encode(message_type, datum)
        assert payload[0] == 0
        schema_id = int.from_bytes(payload[1:5], "big")
        assert fake.subjects[subject_for(message_type)] == [schema_id]
        assert fake.compatibility[subject_for(message_type)] == "BACKWARD_TRANSITIVE"
        payloads[message_type] = (payload, datum)
    registered = len(fake.schemas)
    writer.encode("ChangeEvent", payloads["ChangeEvent"][1])  # cached: nothing registered again
    assert len(fake.schemas) == registered == len(MESSAGE_TYPES)
    posts = [r for r in fake.requests if r[0] == "POST"]
    assert len(posts) == len(MESSAGE_TYPES)

    reader = _codec(url)  # a cold cache: writer schemas fetched by id
    plain = AvroCodec()
    for message_type, (payload, datum) in payloads.items():
        assert reader.message_type_of(payload) == message_type
        expected = plain.decode(plain.encode(message_type, datum), message_type)
        assert reader.decode(payload, message_type) == expected
    assert ("GET", "/schemas/ids/1") in fake.requests


def test_both_framings_decode_and_a_registry_payload_without_a_registry_says_so(
    registry: tuple[FakeSchemaRegistry, str],
) -> None:
    _, url = registry
    confluent = _codec(url)
    old = (GOLDEN_V1 / "ChangeEvent.bin").read_bytes()
    assert confluent.decode(old, "ChangeEvent")["tenant"]  # single-object, by fingerprint
    payload = confluent.encode("Outcome", sample_to_datum(load_sample(SAMPLES, "Outcome")))
    with pytest.raises(DecodeError, match="no schema registry is configured"):
        AvroCodec().decode(payload, "Outcome")
    with pytest.raises(DecodeError, match="expected a ChangeEvent payload, got a Outcome"):
        confluent.decode(payload, "ChangeEvent")
    unknown = b"\x00" + (999).to_bytes(4, "big") + b"\x00"
    with pytest.raises(DecodeError, match="schema id 999 is unknown"):
        confluent.decode(unknown, "Outcome")


def test_registry_refusals_are_clear_and_never_show_the_password(
    registry: tuple[FakeSchemaRegistry, str],
) -> None:
    fake, url = registry
    datum = sample_to_datum(load_sample(SAMPLES, "Cursor"))
    with pytest.raises(ContractError, match="refused the credentials") as denied:
        _codec(url, password="wrong-password").encode("Cursor", datum)
    assert "wrong-password" not in str(denied.value)
    fake.refuse.add(subject_for("Cursor"))
    with pytest.raises(ContractError, match="409"):
        _codec(url).encode("Cursor", datum)


def test_an_unreachable_registry_is_a_retriable_transport_error() -> None:
    codec = AvroCodec(schema_ids=RegistrySchemaIds("http://127.0.0.1:9", timeout=0.5))
    with pytest.raises(TransportError, match="unreachable"):
        codec.encode("Cursor", sample_to_datum(load_sample(SAMPLES, "Cursor")))


def test_a_confluent_topic_is_read_by_tether_tail(
    registry: tuple[FakeSchemaRegistry, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    _, url = registry
    _, layout = provisioned(kafka_bootstrap, topic_prefix)
    settings = TetherSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        wire_format="confluent",
        schema_registry_url=url,
        schema_registry_username="tether",
        schema_registry_password=SecretStr("registry-secret"),
    )
    codec = codec_from(settings)
    assert codec.wire_format == "confluent"
    event = {
        **sample_to_datum(load_sample(SAMPLES, "ChangeEvent")),
        "event_id": str(uuid.uuid4()),
    }
    producer = make_producer(settings, "test")
    topic = layout.changes("wix", "contacts")
    producer.send(topic, key=b"k", value=codec.encode("ChangeEvent", event), partition=0)
    producer.flush()
    producer.close()
    (message,) = tail(settings, topic)
    assert message["type"] == "ChangeEvent"
    assert message["value"]["event_id"] == event["event_id"]
