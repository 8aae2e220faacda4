"""PowerOffice Go v2 connector: production client, typed records, local simulator.

- ``client.py``: ``PowerOfficeClient`` (what the extractor and loader use in production).
- ``models.py``: ``Employee``, ``Customer``, ``ContactPerson`` and parsing helpers.
- ``simulator.py`` / ``simstore.py``: the local stand-in of the API; ``admin.py``: a client of
  the simulator's ``/_admin`` API. Import these explicitly — this package's namespace exports only
  the production client and models, so production code never loads the simulator.
"""

from services.connectors.poweroffice.client import (
    CreateResult,
    PowerOfficeClient,
    RequestObserver,
    RetryPolicy,
    build_patch,
)
from services.connectors.poweroffice.models import (
    ContactAddress,
    ContactPerson,
    Customer,
    Employee,
    format_timestamp,
    parse_contact_person,
    parse_customer,
    parse_employee,
    parse_timestamp,
)

__all__ = [
    "ContactAddress",
    "ContactPerson",
    "CreateResult",
    "Customer",
    "Employee",
    "PowerOfficeClient",
    "RequestObserver",
    "RetryPolicy",
    "build_patch",
    "format_timestamp",
    "parse_contact_person",
    "parse_customer",
    "parse_employee",
    "parse_timestamp",
]
