"""Credential references resolve to secrets from files, never from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.tenants import credentials


def test_a_secret_reference_is_a_directory_under_the_secrets_dir(tmp_path: Path) -> None:
    mount = tmp_path / "tether-tenant-acme"
    credentials.write(mount, {"tether_wix_api_key": "k-1", "poweroffice_client_key": "c-1"})
    (mount / "..data").mkdir()  # what a Kubernetes Secret mount also holds
    found = credentials.resolve("secret:tether-tenant-acme", tenant_secrets_dir=tmp_path)
    assert {k: v.get_secret_value() for k, v in found.items()} == {
        "wix_api_key": "k-1",
        "poweroffice_client_key": "c-1",
    }
    assert "k-1" not in repr(found)
    assert oct((mount / "tether_wix_api_key").stat().st_mode & 0o777) == "0o600"


def test_a_dir_reference_and_the_deployments_own(tmp_path: Path) -> None:
    credentials.write(tmp_path, {"wix_api_key": "k"})
    assert set(credentials.resolve(f"dir:{tmp_path}")) == {"wix_api_key"}
    assert credentials.resolve("") == {}


def test_a_secret_reference_may_be_keys_of_one_shared_secret(tmp_path: Path) -> None:
    # the Secret tether-tenant-credentials mounted as the tenant secrets directory
    credentials.write(tmp_path, {"acme.wix_api_key": "k-1", "acme-2.wix_api_key": "k-2"})
    found = credentials.resolve("secret:acme", tenant_secrets_dir=tmp_path)
    assert {k: v.get_secret_value() for k, v in found.items()} == {"wix_api_key": "k-1"}


@pytest.mark.parametrize(
    "ref", ["env:X", "secret:", "secret:../etc", "secret:a.b", "dir:relative/path", "x"]
)
def test_malformed_references_are_refused(ref: str) -> None:
    with pytest.raises(credentials.CredentialsError):
        credentials.check_ref(ref)


def test_a_missing_directory_names_the_reference_only(tmp_path: Path) -> None:
    with pytest.raises(credentials.CredentialsError, match="no such directory or keys"):
        credentials.resolve("secret:gone", tenant_secrets_dir=tmp_path)
