"""Benchmark of the Wix simulator's write path as the store grows (a script, not a test).

    .venv/bin/python bench/wix_simulator.py                    # 1k and 5k stored contacts
    .venv/bin/python bench/wix_simulator.py --sizes 1000,5000,20000 --creates 300

For each size N the simulator is seeded with N contacts (e-mail, phone, a ``tether-link-id``
extended field), then one ``WixClient`` over real HTTP (rate limit lifted) makes ``--creates``
creates (each runs the duplicate check), ``--creates`` extended-field look-ups and ``--creates``
polls of the contacts updated since the tenth-last create (the extractor's query: an
``updatedDate`` range sorted by ``createdDate``; ten contacts each). Printed: creates/s,
look-ups/s and polls/s at each size. A simulator whose duplicate check, look-ups and date ranges
are indexed shows the same figures at every size.
"""

from __future__ import annotations

import argparse
import time

from benchkit import add_timeout, arm_timeout
from pydantic import SecretStr

from services.connectors.simkit import ServerThread
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget


def _seed(sim: WixSimulator, n: int, key: str) -> None:
    records: list[object] = [
        {
            "info": {
                "name": {"first": f"Seed{i}", "last": "Person"},
                "emails": {"items": [{"tag": "MAIN", "email": f"seed{i}@example.com"}]},
                "phones": {"items": [{"tag": "MOBILE", "phone": f"+4791{i:06d}"}]},
                "extendedFields": {"items": {key: f"seed-link-{i}"}},
            }
        }
        for i in range(n)
    ]
    sim.store.seed(records, actor={"identityType": "WIX_USER"}, emit=False)


def run(size: int, creates: int) -> tuple[float, float, float]:
    sim = WixSimulator(rate_limit=0)
    with ServerThread(sim.app) as server:
        auth = ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id)
        with WixClient(auth, ApiBudget("bench", 0), base_url=server.url) as client:
            key = client.find_or_create_extended_field("tether-link-id")
            _seed(sim, size, key)
            started = time.perf_counter()
            created = [
                client.create(
                    {
                        "info.name.first": f"New{i}",
                        "info.emails[primary].email": f"new{i}@example.com",
                        "info.phones[primary].phone": f"+4792{i:06d}",
                    }
                )
                for i in range(creates)
            ]
            create_rate = creates / (time.perf_counter() - started)
            started = time.perf_counter()
            for i in range(creates):
                client.find_by_extended_field(key, f"seed-link-{(i * 7919) % size}")
            lookup_rate = creates / (time.perf_counter() - started)
            since = created[-10].updated_date
            started = time.perf_counter()
            for _ in range(creates):
                list(client.iter_updated_since(since, inclusive=True))
            poll_rate = creates / (time.perf_counter() - started)
    sim.close()
    return create_rate, lookup_rate, poll_rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000", help="stored contacts, comma separated")
    parser.add_argument("--creates", type=int, default=300, help="creates (and look-ups) per size")
    add_timeout(parser, 900)
    args = parser.parse_args(argv)
    arm_timeout(args.timeout, "bench/wix_simulator.py")
    for size in (int(s) for s in args.sizes.split(",")):
        create_rate, lookup_rate, poll_rate = run(size, args.creates)
        print(
            f"{size:>7} stored: {create_rate:7.1f} creates/s   "
            f"{lookup_rate:7.1f} extended-field look-ups/s   {poll_rate:7.1f} updated-since polls/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
