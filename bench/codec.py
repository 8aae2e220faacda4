"""Codec benchmark (not a test): encode/decode records/s of a ChangeEvent carrying a Wix contact
and one carrying a PowerOffice employee, with the record conversion from/to API dicts, and of a
Command carrying its target's last-known record (what the mapper encodes per write).

    .venv/bin/python bench/codec.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from benchkit import add_timeout, arm_timeout

from services.connectors import registry
from services.core.codec import DEFAULT_SCHEMAS_DIR, AvroCodec
from services.core.records import unwrap_record, wrap_record
from services.core.schema_release import load_sample, sample_to_datum


def rate(fn: Callable[[], object], seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            fn()
        count += 200
    return count / elapsed


def main() -> None:
    registry.install()  # core's topics and record types, as the tether command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    add_timeout(parser, 300)
    args = parser.parse_args()
    arm_timeout(args.timeout, "bench/codec.py")
    codec = AvroCodec()
    sample = sample_to_datum(load_sample(DEFAULT_SCHEMAS_DIR / "samples", "ChangeEvent"))
    command = sample_to_datum(load_sample(DEFAULT_SCHEMAS_DIR / "samples", "Command"))
    wix_contact = unwrap_record(command["target_record"])
    assert wix_contact is not None
    wix_event = {
        **sample,
        "system": "wix",
        "resource": "contacts",
        "record": wrap_record("wix", "contacts", wix_contact[1]),
    }
    for name, event in (("poweroffice employee", sample), ("wix contact", wix_event)):
        payload = codec.encode("ChangeEvent", event)
        enc = rate(lambda e=event: codec.encode("ChangeEvent", e), args.seconds)
        dec = rate(lambda p=payload: codec.decode(p, "ChangeEvent"), args.seconds)
        api = unwrap_record(event["record"])
        assert api is not None
        full = rate(
            lambda a=api[1], e=event, s=event["system"], r=event["resource"]: codec.encode(
                "ChangeEvent", {**e, "record": wrap_record(s, r, a)}
            ),
            args.seconds,
        )
        print(
            f"ChangeEvent ({name}, {len(payload)} bytes): encode {enc:,.0f}/s, "
            f"decode {dec:,.0f}/s, API dict -> bytes {full:,.0f}/s"
        )
    payload = codec.encode("Command", command)
    enc = rate(lambda: codec.encode("Command", command), args.seconds)
    dec = rate(lambda: codec.decode(payload, "Command"), args.seconds)
    print(
        f"Command (wix contact target, {len(payload)} bytes): "
        f"encode {enc:,.0f}/s, decode {dec:,.0f}/s"
    )


if __name__ == "__main__":
    main()
