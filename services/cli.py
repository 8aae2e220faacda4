"""The ``tether`` command: one entry point, a subcommand per service and tool.

    tether extractor | mapper | loader        run a service (settings from TETHER_* variables)
    tether simulate poweroffice|wix [...]     run an API simulator as its own process
                                              (--tenants N: N clients/sites, one process)
    tether topics provision                   create the configured topics (idempotent)
    tether schemas release VERSION            freeze the current schemas as a released version
    tether demo [...]                         the whole pipeline on the embedded default
    tether edit poweroffice|wix ...           edit a record in a running simulator
    tether chaos [...]                        the pipeline under faults (``make chaos``)
    tether explain ...                        why is a record (not) synced? (mapper read model)
    tether verify [--loop] [--no-repair]      compare both systems per link, repair divergence
    tether console                            the operator console: API and web pages
    tether review list|show|resolve ...       review items, through the console's API
    tether links list|show|unlink|resync ...  links and their timelines, through the console's API
    tether deadletters list|redrive ...       dead letters, through the console's API
    tether actions show ID | list             an operator action's result; the audit trail
    tether replay ...                         reprocess a stage from a time or offset
    tether tenants add|list|show|set|pause|resume|remove|erase   the tenant registry
    tether tail TOPIC [--key K --since 2h]    a topic's messages as JSON lines (any schema version)
    tether decode [FILE]                      one Avro payload as JSON
    tether config [SERVICE]                   the effective configuration, secrets masked
    tether doctor [--json]                    credentials, permissions, webhooks, clock, budgets
    tether preview [--json]                   what the first sync would do, read-only
    tether --version                          the installed version

Every run warns (standard error) about ``TETHER_*`` variables that no setting reads, naming the
closest known one (``config_command.unknown_variable_warnings``).

Each subcommand imports its module lazily, so ``tether simulate wix`` does not load Kafka code;
every other command first installs the connectors' resources (``services.connectors.registry``).
This module sits above the services and may import all of them; they never import it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Sequence

from services.core.errors import ConfigurationError

# subcommand -> "module:function" taking argv (list[str]) and returning an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "extractor": ("services.extractor.main:main", "run the extractor service"),
    "mapper": ("services.mapper.main:main", "run the mapper service"),
    "loader": ("services.loader.main:main", "run the loader service"),
    "demo": ("services.demo.main:main", "run the whole pipeline on the embedded default"),
    "edit": ("services.demo.edit:main", "edit a record in a running simulator, as in the UI"),
    "chaos": ("services.demo.chaos:main", "the pipeline under faults: assert exact convergence"),
    "explain": ("services.mapper.explain:main", "why is a record (not) synced?"),
    "dataflow": (
        "services.mapper.dataflow_file:main",
        "check a dataflow file (mappings, policy); print its JSON Schema",
    ),
    "verify": ("services.verify.main:main", "compare both systems per link, repair what differs"),
    "console": ("services.console.main:main", "run the operator console (API + web pages)"),
    "review": ("services.console.client:review_main", "review items: list, show, resolve (API)"),
    "links": ("services.console.client:links_main", "links: list, show, timeline, act (API)"),
    "deadletters": (
        "services.console.client:deadletters_main",
        "dead letters: list, re-drive (console API)",
    ),
    "actions": ("services.console.client:actions_main", "an operator action's result (API)"),
    "replay": ("services.replay.main:main", "reprocess a stage from a time or an offset"),
    "tenants": (
        "services.tenants.cli:main",
        "tenants: add, list, show, set, pause, resume, remove, erase",
    ),
    "topics": ("services.core.admin:topics_main", "topic provisioning"),
    "schemas": ("services.core.admin:schemas_main", "schema registry maintenance"),
    "tail": ("services.core.topic_reader:tail_main", "print a topic's messages as JSON lines"),
    "decode": ("services.core.topic_reader:decode_main", "decode one Avro payload to JSON"),
    "config": ("services.config_command:main", "print the effective configuration, secrets masked"),
    "doctor": (
        "services.onboarding.doctor:main",
        "check credentials, permissions, webhooks, clock",
    ),
    "preview": ("services.onboarding.preview:main", "what the first sync would do (read-only)"),
}
SIMULATORS = {
    "poweroffice": "services.connectors.poweroffice.simtenants:main",
    "wix": "services.connectors.wix.simsites:main",
}


def _load(target: str) -> Callable[[list[str]], int | None]:
    module_name, _, function = target.partition(":")
    module = importlib.import_module(module_name)
    entry: Callable[[list[str]], int | None] = getattr(module, function)
    return entry


def install_connectors() -> None:
    """Fill core's topic and record-type tables from the connector descriptors — before any
    command asks for a topic (the console and the tools do not import the connectors)."""
    from services.connectors import registry

    registry.install()


def usage() -> str:
    lines = [
        "usage: tether <command> [args]   (tether --version; tether <command> --help)",
        "",
        "commands:",
    ]
    for name, (_, help_text) in COMMANDS.items():
        lines.append(f"  {name:<12} {help_text}")
    lines.append(f"  {'simulate':<12} run an API simulator: tether simulate poweroffice|wix [...]")
    return "\n".join(lines)


def version() -> str:
    try:
        return importlib.metadata.version("tether")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def warn_about_unknown_variables() -> None:
    from services.config_command import unknown_variable_warnings

    for line in unknown_variable_warnings(os.environ):
        print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] in ("--version", "-V", "version"):
        print(f"tether {version()}")
        return 0
    warn_about_unknown_variables()
    command, rest = args[0], args[1:]
    if command == "simulate":
        if not rest or rest[0] not in SIMULATORS:
            print("usage: tether simulate poweroffice|wix [options]", file=sys.stderr)
            return 2
        return _load(SIMULATORS[rest[0]])(rest[1:]) or 0
    if command not in COMMANDS:
        print(f"tether: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        install_connectors()
        return _load(COMMANDS[command][0])(rest) or 0
    except ConfigurationError as exc:  # a setting to fix: say which, no traceback
        print(f"tether {command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
