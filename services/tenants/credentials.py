"""A tenant's secrets, resolved from its credential reference (file system only).

The registry never holds a secret: a tenant's ``credentials_ref`` names where they are.

- ``secret:<name>`` — under ``TETHER_TENANT_SECRETS_DIR`` (default
  ``/var/run/secrets/tether-tenants``): either the directory ``<name>/``
  (a Secret of its own mounted there) or the files ``<name>.<field>`` (keys of one shared Secret
  mounted as that directory: ``deploy/k8s`` mounts the Secret ``tether-tenant-credentials`` so;
  adding a tenant's keys to it needs no restart and no redeploy — the kubelet updates a mounted
  Secret in place within about a minute — while a new Secret per tenant would need a new volume);
- ``dir:<absolute path>`` — any directory (tests, the demo, a secrets agent's output).

Each file is one secret, named like the setting field it fills, with or without the ``tether_``
prefix (``wix_api_key`` or ``tether_wix_api_key``: the same naming as the deployment's own
secrets directory). ``<name>`` is lower-case letters, digits and dashes (no dot: the dot
separates it from the field in the shared form). Files are read at each resolution, so a
rotated secret is picked up when a tenant's clients are next built. Values are ``SecretStr``; a
missing directory or an unreadable file is a :class:`CredentialsError` naming the reference,
never a value.

Imports: standard library and pydantic only.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

#: Where ``secret:`` references resolve (``TETHER_TENANT_SECRETS_DIR``, a setting of every service:
#: the callers pass it; this module reads no environment).
DEFAULT_TENANT_SECRETS_DIR = "/var/run/secrets/tether-tenants"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class CredentialsError(ValueError):
    """A credential reference that does not resolve (the message names the reference only)."""


def check_ref(ref: str) -> str:
    """Refuse a reference of unknown form ('' = the deployment's own credentials)."""
    if ref == "":
        return ref
    kind, _, rest = ref.partition(":")
    if kind == "secret" and rest and set(rest) <= _NAME_OK:
        return ref
    if kind == "dir" and rest.startswith("/"):
        return ref
    raise CredentialsError(
        f"invalid credentials reference {ref!r}: use secret:<kubernetes secret name> or "
        "dir:<absolute path>"
    )


def directory_of(
    ref: str, tenant_secrets_dir: str | Path = DEFAULT_TENANT_SECRETS_DIR
) -> Path | None:
    """The directory a reference names (``None`` for the deployment's own credentials)."""
    check_ref(ref)
    if ref == "":
        return None
    kind, _, rest = ref.partition(":")
    if kind == "dir":
        return Path(rest)
    return Path(tenant_secrets_dir) / rest


def _files(ref: str, directory: Path) -> list[tuple[str, Path]]:
    """(field file name, path) of a reference: its own directory, else its shared-Secret keys."""
    if directory.is_dir():
        # Kubernetes mounts Secrets with ..data symlinks and dot-directories: skip those.
        return [
            (path.name, path)
            for path in sorted(directory.iterdir())
            if not path.name.startswith(".") and path.is_file()
        ]
    prefix = directory.name + "."
    shared = directory.parent
    if ref.startswith("secret:") and shared.is_dir():
        found = [
            (path.name.removeprefix(prefix), path)
            for path in sorted(shared.iterdir())
            if path.name.startswith(prefix) and path.is_file()
        ]
        if found:
            return found
    raise CredentialsError(f"credentials {ref!r}: no such directory or keys")


def resolve(
    ref: str, tenant_secrets_dir: str | Path = DEFAULT_TENANT_SECRETS_DIR
) -> dict[str, SecretStr]:
    """The secrets a reference holds, by setting field name."""
    directory = directory_of(ref, tenant_secrets_dir)
    if directory is None:
        return {}
    secrets: dict[str, SecretStr] = {}
    for file_name, path in _files(ref, directory):
        name = file_name.lower().removeprefix("tether_")
        try:
            secrets[name] = SecretStr(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise CredentialsError(
                f"credentials {ref!r}: cannot read {path.name} ({type(exc).__name__})"
            ) from None
    return secrets


def write(directory: Path, secrets: dict[str, str]) -> None:
    """Write secrets as files of a credentials directory (owner-only), as a Secret mount has them:
    for the demo, the benchmarks and tests. Production creates Kubernetes Secrets instead."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, value in secrets.items():
        path = directory / name
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
