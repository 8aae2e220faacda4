"""``tether edit``: change a record in a running simulator as a person would in the product UI.

    tether edit poweroffice employees 100001 LastName=Nordmann --url http://127.0.0.1:8081
    tether edit wix <contact-id> first=Kari last=Nordmann --url http://127.0.0.1:8082

The edit bumps the record's change timestamp (PowerOffice) or revision (Wix, and fires the
webhook), exactly like an edit in the product, so the running pipeline picks it up.
"""

from __future__ import annotations

import argparse
import json

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.stream import API_RESOURCE
from services.connectors.wix.admin import WixAdmin

PO_RESOURCES: dict[str, str] = {**API_RESOURCE, **{api: api for api in API_RESOURCE.values()}}
"""A resource by the engine's name or the API's -> the API's."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tether edit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="system", required=True)
    po = sub.add_parser("poweroffice", help="edit an employee, customer or contact person")
    po.add_argument("resource", choices=sorted(PO_RESOURCES))
    po.add_argument("id", type=int)
    po.add_argument("changes", nargs="+", help="Field=Value (PascalCase); Field= clears")
    po.add_argument("--url", default="http://127.0.0.1:8081")
    wix = sub.add_parser("wix", help="edit a Wix contact's name, primary e-mail or phone")
    wix.add_argument("contact_id")
    wix.add_argument("changes", nargs="+", help="first=, last=, email=, phone=")
    wix.add_argument("--url", default="http://127.0.0.1:8082")
    args = parser.parse_args(argv)
    changes = dict(change.split("=", 1) for change in args.changes)
    values = {k: (v or None) for k, v in changes.items()}
    if args.system == "poweroffice":
        with PowerOfficeSimulatorAdmin(args.url) as admin:
            result = admin.edit(PO_RESOURCES[args.resource], args.id, values)
    else:
        admin_wix = WixAdmin(args.url)
        try:
            info: dict[str, object] = {}
            if "first" in values or "last" in values:
                info["name"] = {"first": values.get("first"), "last": values.get("last")}
            if "email" in values:
                info["emails"] = {
                    "items": [{"tag": "MAIN", "email": values["email"], "primary": True}]
                    if values["email"]
                    else []
                }
            if "phone" in values:
                info["phones"] = {
                    "items": [{"tag": "MOBILE", "phone": values["phone"], "primary": True}]
                    if values["phone"]
                    else []
                }
            result = admin_wix.edit(args.contact_id, info)
        finally:
            admin_wix.close()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
