"""Which canonical fields a feed change's JSON-patch paths can change, per registry.

A path's first token is resolved to a field of the provider's own body model (worker/registry/brreg.py,
proff.py) through that model's JSON names, so a key the parser does not read changes nothing, and a renamed
key cannot drift from the parser. The tables below say, per model field, which canonical fields the mapper
derives from it; tests/unit/test_feed_contracts.py checks that every model field has an entry, that every
canonical field is reachable, and (by perturbing real bodies through the real mappers) that no entry is short.

Addresses are coarse on purpose: any read part of an address may make the whole address appear or vanish, which
moves every part of it and the older either-address fields (``street``, ``city``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from worker.company import CANONICAL_FIELDS
from worker.feeds.patch import pointer_parts
from worker.registry.brreg import BrregAddress, BrregCode, BrregUnit
from worker.registry.proff import ProffAddress, ProffCompany, ProffStatus

_NONE: frozenset[str] = frozenset()
_EITHER = frozenset({"street", "postal_code", "city", "address_country"})
_NACE = frozenset({"nace_code", "nace_text", "nace_full"})


def _address(which: str) -> frozenset[str]:
    return _EITHER | {f"{which}_{part}" for part in ("street", "postal_code", "city", "country")}


@dataclass(frozen=True, slots=True)
class Node:
    """What a change at (or anywhere below) one model field can change; ``children`` refines sub-keys."""

    fields: frozenset[str]
    model: type[BaseModel] | None = None  # the nested model whose JSON names resolve the second token
    children: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _address_node(model: type[BaseModel], which: str, unread: Iterable[str] = ()) -> Node:
    fields = _address(which)
    children = {name: _NONE if name in unread else fields for name in model.model_fields}
    return Node(fields, model, children)


#: BrregUnit field -> what map_brreg derives from it. ``land`` of an address and ``beskrivelse`` of the legal
#: form are parsed but not mapped; the status flags and ``slettedato`` all decide ``status``.
BRREG: dict[str, Node] = {
    "organisasjonsnummer": Node(_NONE),
    "navn": Node(frozenset({"name"})),
    "organisasjonsform": Node(
        frozenset({"legal_form"}), BrregCode, {"kode": frozenset({"legal_form"}), "beskrivelse": _NONE}
    ),
    "forretningsadresse": _address_node(BrregAddress, "business", unread=("land",)),
    "postadresse": _address_node(BrregAddress, "postal", unread=("land",)),
    "naeringskode1": Node(
        _NACE,
        BrregCode,
        {"kode": frozenset({"nace_code", "nace_full"}), "beskrivelse": frozenset({"nace_text", "nace_full"})},
    ),
    "antall_ansatte": Node(frozenset({"employees"})),
    "stiftelsesdato": Node(frozenset({"founded"})),
    "hjemmeside": Node(frozenset({"website"})),
    "konkurs": Node(frozenset({"status"})),
    "under_avvikling": Node(frozenset({"status"})),
    "under_tvangsavvikling_eller_tvangsopplosning": Node(frozenset({"status"})),
    "slettedato": Node(frozenset({"status"})),
}

#: ProffCompany field -> what map_proff derives from it. ``registrationDate`` is parsed but not mapped; an
#: address's country comes from the lookup key, so only the address's presence moves it.
PROFF: dict[str, Node] = {
    "organisation_number": Node(_NONE),
    "name": Node(frozenset({"name"})),
    "company_type": Node(frozenset({"legal_form"})),
    "status": Node(frozenset({"status"}), ProffStatus, {"status_flag": frozenset({"status"})}),
    "registration_date": Node(_NONE),
    "established_date": Node(frozenset({"founded"})),
    "number_of_employees": Node(frozenset({"employees"})),
    "revenue": Node(frozenset({"revenue"})),
    "nace_categories": Node(_NACE),
    "home_page": Node(frozenset({"website"})),
    "visitor_address": _address_node(ProffAddress, "business"),
    "postal_address": _address_node(ProffAddress, "postal"),
}

#: Per provider: its body model and table; canonical fields the registry never provides.
PROVIDERS: dict[str, tuple[type[BaseModel], dict[str, Node]]] = {
    "brreg": (BrregUnit, BRREG),
    "proff": (ProffCompany, PROFF),
}
NOT_PROVIDED: dict[str, frozenset[str]] = {
    "brreg": frozenset({"revenue", "last_updated"}),
    "proff": frozenset({"last_updated"}),
}


def json_names(model: type[BaseModel]) -> dict[str, str]:
    """JSON key -> field name, as the model reads bodies: by alias, and by name (``populate_by_name``)."""
    names = {name: name for name in model.model_fields}
    names.update({info.alias: name for name, info in model.model_fields.items() if info.alias})
    return names


def path_fields(provider: str, path: str) -> frozenset[str] | None:
    """The canonical fields one patch path can change; None when it points at the whole body."""
    model, table = PROVIDERS[provider]
    parts = pointer_parts(path)
    if not parts:
        return None
    name = json_names(model).get(parts[0])
    node = table.get(name) if name else None
    if node is None:
        return _NONE  # a key the parser does not read cannot change a canonical field
    if len(parts) == 1 or node.model is None:
        return node.fields
    child = json_names(node.model).get(parts[1])
    return node.children.get(child, _NONE) if child else _NONE


def canonical_fields(provider: str, paths: tuple[str, ...] | None) -> frozenset[str] | None:
    """Which canonical fields (worker.company.CANONICAL_FIELDS) the patch ``paths`` of a change can change.

    None in (the feed did not say) or a path at the whole body gives None: every field may have changed.

    Raises:
        ValueError: an unknown provider.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"no feed path table for registry provider {provider!r}")
    if paths is None:
        return None
    found: set[str] = set()
    for path in paths:
        fields = path_fields(provider, path)
        if fields is None:
            return None
        found |= fields
    return frozenset(found) & frozenset(CANONICAL_FIELDS)
