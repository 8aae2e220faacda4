"""Operator subcommands for the shared machinery: ``tether topics ...`` and ``tether schemas ...``.

Imports: the core modules only.
"""

from __future__ import annotations

import argparse
import json

from services.core.kafka import layout_from, provision_topics
from services.core.schema_release import release
from services.core.settings import TetherSettings


def topics_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tether topics")
    sub = parser.add_subparsers(dest="action", required=True)
    provision = sub.add_parser("provision", help="create every missing topic (idempotent)")
    provision.add_argument(
        "--dry-run",
        action="store_true",
        help="print the topics the layout needs, with their settings, and create nothing",
    )
    sub.add_parser("list", help="print the topics of the configured layout with their settings")
    args = parser.parse_args(argv)
    settings = TetherSettings.load()
    if args.action == "list" or args.dry_run:
        for spec in layout_from(settings).specs():
            print(
                json.dumps(
                    {"topic": spec.name, "partitions": spec.partitions, "config": spec.config_dict}
                )
            )
        return 0
    created = provision_topics(settings)
    print(json.dumps({"created": created}))
    return 0


def schemas_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tether schemas")
    sub = parser.add_subparsers(dest="action", required=True)
    rel = sub.add_parser("release", help="freeze the current schemas as a released version")
    rel.add_argument("version")
    args = parser.parse_args(argv)
    print(release(args.version))
    return 0
