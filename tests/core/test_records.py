"""API records survive the typed Avro record types without losing unknown fields."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.codec import AvroCodec
from services.core.errors import ContractError
from services.core.records import (
    UNKNOWN_FIELDS,
    _named_types,
    to_api,
    to_avro,
    unwrap_record,
    wrap_record,
)


def test_unknown_fields_are_kept_at_every_level() -> None:
    contact = {
        "id": "c1",
        "revision": 2,
        "info": {
            "name": {"first": "Bjørn", "last": "Østby", "middle": "X"},
            "emails": {"items": [{"email": "b@x.no", "primary": True, "verified": True}]},
            "addresses": {"items": [{"address": {"city": "Oslo"}}]},
        },
        "source": {"sourceType": "WIX_APP"},
    }
    back = to_api("tether.wix.Contact", to_avro("tether.wix.Contact", contact))
    assert back["source"] == {"sourceType": "WIX_APP"}
    assert back["info"]["addresses"] == {"items": [{"address": {"city": "Oslo"}}]}
    assert back["info"]["name"]["middle"] == "X"
    assert back["info"]["emails"]["items"][0]["verified"] is True
    assert back["info"]["name"]["first"] == "Bjørn"


def test_record_travels_through_a_change_event() -> None:
    codec = AvroCodec()
    employee = {"Id": 5, "FirstName": "Ola", "Gender": "Male", "ContactGroupIds": [1, 2]}
    event = {
        "event_id": "e",
        "tenant": "t",
        "system": "poweroffice",
        "resource": "employees",
        "record_id": "5",
        "operation": "UPSERT",
        "origin": "POLL",
        "source_timestamp": 0,
        "source_version": None,
        "extracted_at": 0,
        "record": wrap_record("poweroffice", "employees", employee),
    }
    decoded = codec.decode(codec.encode("ChangeEvent", event), "ChangeEvent")
    unwrapped = unwrap_record(decoded["record"])
    assert unwrapped is not None
    type_name, record = unwrapped
    assert type_name == "tether.poweroffice.Employee"
    assert record["Gender"] == "Male" and record["ContactGroupIds"] == [1, 2]
    assert record["Id"] == 5 and record["FirstName"] == "Ola"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"FirstName": "Ola"}, r"Employee\.Id: required value is missing"),
        ({"Id": "12"}, r"Employee\.Id: expected an integer"),
        ({"Id": 1, "FirstName": 7}, r"Employee\.FirstName: expected a string"),
        ({"Id": 1, "IsArchived": "no"}, r"Employee\.IsArchived: expected true/false"),
        ({"Id": 1, "MailAddress": "Oslo"}, r"Employee\.MailAddress: expected an object"),
        (["not", "an", "object"], r"Employee: expected an object"),
    ],
)
def test_malformed_records_raise_contract_errors(record: object, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        to_avro("tether.poweroffice.Employee", record)  # type: ignore[arg-type]


def test_unknown_resource_is_a_contract_error() -> None:
    with pytest.raises(ContractError):
        wrap_record("poweroffice", "suppliers", {"Id": 1})


# -- property: every record type round-trips, whatever is present, null, absent or unknown ---------

RECORD_TYPE_NAMES = (
    "tether.poweroffice.Employee",
    "tether.poweroffice.Customer",
    "tether.poweroffice.ContactPerson",
    "tether.wix.Contact",
)
_SCALARS: dict[str, st.SearchStrategy[object]] = {
    "string": st.text(max_size=8),
    "long": st.integers(-(2**40), 2**40),
    "int": st.integers(-(2**20), 2**20),
    "boolean": st.booleans(),
}
_UNKNOWN_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-99, 99) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)


def _api_value(types: dict[str, Any], node: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """API JSON values valid for a schema node, and the value ``to_api`` must give back."""
    node = types.get(node, node) if isinstance(node, str) else node
    if isinstance(node, list):
        branch = next(b for b in node if b != "null")
        return st.one_of(st.just((None, None)), _api_value(types, branch, depth))
    kind = node if isinstance(node, str) else node.get("type")
    if isinstance(kind, dict | list):
        return _api_value(types, kind, depth)
    if kind == "array":
        item = _api_value(types, node["items"], depth + 1)
        return st.lists(item, max_size=2).map(
            lambda pairs: ([a for a, _ in pairs], [b for _, b in pairs])
        )
    if kind == "record":
        return _api_record(types, node, depth + 1)
    scalar = _SCALARS[kind]
    return scalar.map(lambda v: (v, v))


def _api_record(types: dict[str, Any], node: Any, depth: int) -> st.SearchStrategy[Any]:
    known = [f for f in node["fields"] if f["name"] != UNKNOWN_FIELDS]
    names = {f["name"] for f in known}
    fields = {f["name"]: _api_value(types, f["type"], depth) for f in known}
    required = {f["name"] for f in known if not isinstance(f["type"], list)}

    @st.composite
    def build(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
        api: dict[str, Any] = {}
        back: dict[str, Any] = {}
        for name, strategy in fields.items():
            if name in required or draw(st.booleans()):
                api[name], back[name] = draw(strategy)
            else:
                back[name] = None  # absent in the API record: comes back as None
        if depth < 3:
            extra = draw(
                st.dictionaries(st.text(min_size=1, max_size=6), _UNKNOWN_VALUES, max_size=2)
            )
            for name, value in extra.items():
                if name not in names:
                    api[name] = back[name] = value
        return api, back

    return build()


@pytest.mark.parametrize("type_name", RECORD_TYPE_NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_record_type_round_trips_through_avro(type_name: str, data: st.DataObject) -> None:
    types = _named_types(type_name)
    api, expected = data.draw(_api_record(types, types[type_name], 0))
    datum = to_avro(type_name, api)
    # through Avro bytes, as on Kafka
    schema = fastavro.parse_schema(types[type_name])
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, datum)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, None)
    assert isinstance(decoded, dict)
    assert to_api(type_name, decoded) == expected
