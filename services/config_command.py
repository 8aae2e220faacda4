"""``tether config`` and the check of ``TETHER_*`` variables against the settings that exist.

- :func:`known_variables` lists every environment variable some Tether settings class reads
  (``TETHER_<FIELD>`` of each service's settings), plus the few read outside settings classes.
- :func:`unknown_variable_warnings` names each ``TETHER_*`` variable that nothing reads, with the
  closest known one (a typo like ``TETHER_KAFKA_BOOTSTRAP_SERVER`` is otherwise silently ignored:
  the settings classes ignore extra variables so that one ConfigMap can serve every service).
- :func:`effective_configuration` is what ``tether config`` prints: per service, every setting's
  effective value, secrets masked (``SecretStr`` prints as ``**********``).

This module sits beside ``cli.py`` above the services (it imports their settings modules, which
import only pydantic); nothing imports it but the CLI.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from services.console.settings import ConsoleSettings
from services.core.settings import TetherSettings
from services.extractor.settings import ExtractorSettings
from services.loader.settings import LoaderSettings
from services.mapper.settings import MapperSettings
from services.verify.settings import VerifySettings

SERVICE_SETTINGS: dict[str, type[TetherSettings]] = {
    "extractor": ExtractorSettings,
    "mapper": MapperSettings,
    "loader": LoaderSettings,
    "verify": VerifySettings,
    "console": ConsoleSettings,
}

#: Variables read outside the settings classes: the secrets directory (read before settings are
#: built) and the local infrastructure script's own (scripts/infra.py, scripts/fresh-machine.sh).
OTHER_VARIABLES = frozenset(
    {
        "TETHER_SECRETS_DIR",
        "TETHER_CACHE_DIR",
        "TETHER_INFRA_DIR",
        "TETHER_KAFKA_PORT",
        "TETHER_KAFKA_CONTROLLER_PORT",
        "TETHER_POSTGRES_PORT",
        "TETHER_POSTGRES_DURABLE",
        "TETHER_KEEP_INFRA",
        "TETHER_INFRA_TLS",
        "TETHER_KAFKA_SECURE_PORT",
        "TETHER_INFRA_KAFKA_SASL_SSL",
        "TETHER_INFRA_TLS_DIR",
    }
)
PREFIX = "TETHER_"


def known_variables() -> frozenset[str]:
    names = set(OTHER_VARIABLES)
    settings_classes: list[type[TetherSettings]] = [TetherSettings, *SERVICE_SETTINGS.values()]
    for settings_class in settings_classes:
        names.update(f"{PREFIX}{field.upper()}" for field in settings_class.model_fields)
    return frozenset(names)


def unknown_variable_warnings(environ: Mapping[str, str]) -> list[str]:
    """One line per ``TETHER_*`` variable that no setting reads, naming the closest known one."""
    known = known_variables()
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"tether: warning: {name} is not a Tether setting and is ignored{hint}")
    return warnings


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def effective_configuration(service: str) -> dict[str, Any]:
    """Every setting of one service as it would start now, secrets masked."""
    settings_class = SERVICE_SETTINGS[service]
    settings = settings_class.load()
    return {name: _masked(getattr(settings, name)) for name in settings_class.model_fields}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tether config",
        description="Print the effective configuration (TETHER_* variables, secret files and "
        "defaults) of each service as JSON, secrets masked, and warn about TETHER_* variables "
        "that no setting reads.",
    )
    parser.add_argument(
        "service",
        nargs="?",
        choices=sorted(SERVICE_SETTINGS),
        help="one service (default: all of them)",
    )
    args = parser.parse_args(argv)
    services = [args.service] if args.service else sorted(SERVICE_SETTINGS)
    try:
        report = {service: effective_configuration(service) for service in services}
    except ValueError as exc:  # pydantic's ValidationError: which variable, which rule
        print(f"tether config: invalid configuration: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0
