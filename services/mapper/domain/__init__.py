"""The mapper's pure domain core: mappings, matching, link state, merge and decisions.

Nothing in this package performs I/O or imports an I/O library (kafka, psycopg, httpx, fastavro,
prometheus_client, starlette, the connectors, extractor or loader): the service shell decodes
events, loads link state, calls the functions below, persists what they return and emits the
commands. See ``docs/mapping-rules.md`` for the rules.

A link joins one *hub* record with *member* records of the dataflow's flows: roles, not systems.
No module here names a system: the hub's and the flows' systems and resources, and the hub's
field accessors, are installed from the dataflow by the wiring (``mappings.use_dataflow``).

Modules: ``normalize`` (value forms), ``mappings`` (the hub, FlowSpecs, read/write),
``identity`` (record refs, derived ids), ``policy``, ``dataflow`` (the dataflow file's model,
compiled into the hub, FlowSpecs and policy), ``state`` (links), ``messages``
(inputs/outputs), ``matching``, ``merge`` (three-way merge), ``decide`` (entry points).
"""

from services.mapper.domain.decide import (
    adopt_own_create,
    on_change,
    on_delete,
    on_hub_change,
    on_member_change,
    on_outcome,
)
from services.mapper.domain.identity import (
    CONTACT_PERSONS,
    CUSTOMERS,
    RecordRef,
    link_id_for,
)
from services.mapper.domain.mappings import (
    FLOWS,
    PROPERTIES,
    CanonicalProperty,
    FlowSpec,
    Hub,
    HubAccessors,
    KeyKind,
    MatchKey,
    MatchRule,
    PropertyMap,
    Props,
    flow_for,
    hub,
    hub_match_keys,
    hub_write_values,
    is_hub,
    match_keys,
    member_field_values,
    observe_hub,
    observe_member,
    props_match_keys,
    read_hub,
    read_member,
)
from services.mapper.domain.matching import MatchKind, MatchResult, link_match_keys, match
from services.mapper.domain.messages import (
    Candidate,
    Change,
    Command,
    Conflict,
    ConflictSide,
    ContactIndexEntry,
    Decision,
    DecisionKind,
    EventRef,
    Operation,
    Outcome,
    OutcomeKind,
    ReviewItem,
    ReviewReason,
)
from services.mapper.domain.policy import ConflictRule, ContactPersonFilter, Policy
from services.mapper.domain.state import (
    CommandAction,
    ErrorInfo,
    Link,
    LinkStatus,
    Member,
    MemberStatus,
    Origin,
    PendingWrite,
    Snapshot,
    Written,
)

__all__ = [
    "CONTACT_PERSONS",
    "CUSTOMERS",
    "FLOWS",
    "PROPERTIES",
    "Candidate",
    "CanonicalProperty",
    "Change",
    "Command",
    "CommandAction",
    "Conflict",
    "ConflictRule",
    "ConflictSide",
    "ContactIndexEntry",
    "ContactPersonFilter",
    "Decision",
    "DecisionKind",
    "ErrorInfo",
    "EventRef",
    "FlowSpec",
    "Hub",
    "HubAccessors",
    "KeyKind",
    "Link",
    "LinkStatus",
    "MatchKey",
    "MatchKind",
    "MatchResult",
    "MatchRule",
    "Member",
    "MemberStatus",
    "Operation",
    "Origin",
    "Outcome",
    "OutcomeKind",
    "PendingWrite",
    "Policy",
    "PropertyMap",
    "Props",
    "RecordRef",
    "ReviewItem",
    "ReviewReason",
    "Snapshot",
    "Written",
    "adopt_own_create",
    "flow_for",
    "hub",
    "hub_match_keys",
    "hub_write_values",
    "is_hub",
    "link_id_for",
    "link_match_keys",
    "match",
    "match_keys",
    "member_field_values",
    "observe_hub",
    "observe_member",
    "on_change",
    "on_delete",
    "on_hub_change",
    "on_member_change",
    "on_outcome",
    "props_match_keys",
    "read_hub",
    "read_member",
]

# TEMPORARY, for services/mapper/store.py only (owned by a parallel branch that is not to be
# edited here): the names it still imports. The lead drops these when store.py takes the rename
# table (WIX/CONTACTS -> hub().system/hub().resource, Link.wix_contact_id -> hub_record_id).
WIX = "wix"
CONTACTS = "contacts"
