"""The whole pipeline over Kafka SASL_SSL (SCRAM-SHA-512) and PostgreSQL ``verify-full``.

The extractor, mapper and loader run as their own processes (``services.demo.stack``) with only
the secure listener's address and the security settings an operator would set; the initial sync
must reach the seed's exact counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import generate
from services.connectors.wix.admin import WixAdmin
from services.core.topics import TopicLayout
from services.demo import mapperdb
from services.demo.main import collect_records, expectation_misses, reconcile, wait_for_sync
from services.demo.seeding import seed_simulators
from services.demo.stack import Stack
from tests.security.conftest import tls_dir
from tests.support.own_infra import OwnInfra


@pytest.mark.integration
def test_initial_sync_over_sasl_ssl_and_postgres_tls(secure: OwnInfra, tmp_path: Path) -> None:
    assert secure.values is not None
    tls = tls_dir(secure)
    ca = tls / "ca.pem"
    stack = Stack(
        secure.values["TETHER_INFRA_KAFKA_SASL_SSL"],
        f"{secure.dsn}?sslmode=verify-full&sslrootcert={ca}",
        tmp_path,
        extra_env={
            "TETHER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "TETHER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "TETHER_KAFKA_SASL_USERNAME": "tether",
            "TETHER_KAFKA_SASL_PASSWORD": (tls / "kafka-password").read_text().strip(),
            "TETHER_KAFKA_SSL_CAFILE": str(ca),
        },
    )
    # The mapper's database DSN keeps the TLS options (create_database appends the name).
    stack.create_database()
    stack.database_dsn = f"{stack.database_dsn.split('?')[0]}?sslmode=verify-full&sslrootcert={ca}"
    try:
        stack.start_simulators()
        data = generate(80, seed=5)
        seeded = seed_simulators(data, stack.poweroffice_url, stack.wix_url)
        stack.provision_topics()
        stack.start_services()
        total = sum(seeded.counts()[r] for r in ("employees", "customers", "contact_persons"))
        wait_for_sync(stack, TopicLayout(prefix=stack.topic_prefix, partitions=3), total, 240)
        with PowerOfficeSimulatorAdmin(stack.poweroffice_url) as po:
            records = collect_records(po)
        wix = WixAdmin(stack.wix_url)
        contacts = wix.contacts()
        wix.close()
        summary = reconcile(
            records,
            contacts,
            {str(c["id"]) for c in seeded.wix_contacts},
            mapperdb.links(stack.database_dsn),
            mapperdb.review_records(stack.database_dsn),
        )
        review = mapperdb.review_items(stack.database_dsn)
        assert expectation_misses(summary, review, data.expectations) == []
    finally:
        codes = stack.stop()
        stack.drop_database()
    assert {name: codes[name] for name in ("extractor", "mapper", "loader")} == {
        "extractor": 0,
        "mapper": 0,
        "loader": 0,
    }
