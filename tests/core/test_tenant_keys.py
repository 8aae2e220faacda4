"""Which compacted-topic keys a tenant owns, and which topics are compacted (pure)."""

from __future__ import annotations

import pytest

from services.core.topics import TopicLayout, cursor_key, tenant_owns_key


@pytest.mark.parametrize(
    ("key", "owned"),
    [
        (b"acme", True),  # the tenant registry / status key
        (cursor_key("acme", "wix", "contacts", "scan"), True),
        (b"acme/", True),
        (b"acme-2", False),
        (cursor_key("acme-2", "wix", "contacts", "scan"), False),
        (b"acmewix/contacts", False),
        (b"acm", False),
        (b"other/acme/wix", False),
        (None, False),
    ],
)
def test_a_key_is_the_tenants_when_it_is_its_id_or_under_it(key: bytes | None, owned: bool) -> None:
    assert tenant_owns_key("acme", key) is owned


def test_no_key_belongs_to_an_empty_tenant_id() -> None:
    assert not tenant_owns_key("", b"/wix/contacts/scan")
    assert not tenant_owns_key("", b"")


def test_the_compacted_topics_are_those_created_with_the_compact_policy() -> None:
    layout = TopicLayout(prefix="p")
    compacted = layout.compacted_topics()
    assert layout.cursors in compacted
    assert layout.outcomes not in compacted and layout.operator_actions not in compacted
    by_name = {spec.name: spec.config_dict["cleanup.policy"] for spec in layout.specs()}
    assert sorted(compacted) == sorted(n for n, policy in by_name.items() if "compact" in policy)
