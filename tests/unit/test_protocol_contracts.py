"""Contract tests: regsync's registry parsers read ../shared/PROTOCOLS.md's example bodies as written, and the
sandbox renders nothing the document does not show.

The examples are verbatim copies in tests/unit/protocol_examples/ (a checkout may lack ../shared); the first
test checks that the copies still equal the document when it is there. Parsing is fail-closed for meaning
(a missing or unknown status is ``unknown``, never ``active``) and tolerant for noise (omitted keys, nulls,
unknown keys, both coordinate spellings, ranges and free text where a number was hoped for).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from worker.company import Address, Company, CompanyKey, CompanyStatus
from worker.errors import RegistryMalformed
from worker.registry.brreg import brreg_batch_results, map_brreg
from worker.registry.proff import ProffCompany, map_proff, parse_proff
from worker.sandbox.dataset import make_dataset
from worker.sandbox.proff_json import render_proff
from worker.sandbox.registry_json import render_brreg

EXAMPLES = Path(__file__).parent / "protocol_examples"
PROTOCOLS_MD = Path(__file__).resolve().parents[3] / "shared" / "PROTOCOLS.md"
#: The fenced ```json blocks of PROTOCOLS.md in order, then the inline deleted-unit example.
BLOCK_FILES = (
    "proff_register_company_enk.json",
    "proff_changes_page.json",
    "brreg_unit.json",
    "brreg_change_feed_page.json",
)
ENK_KEY = CompanyKey("NO", "924880155")
UNIT_KEY = CompanyKey("NO", "915238475")
DELETED_KEY = CompanyKey("NO", "933602184")
PERSONAL_KEYS = {"personRoles", "contactPerson", "birthDate", "personId", "person_roles", "contact_person"}


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def enk(**changes: Any) -> dict[str, Any]:
    """The ENK example with top-level keys replaced (value ``...`` deletes the key)."""
    body: dict[str, Any] = copy.deepcopy(example("proff_register_company_enk.json"))
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def test_embedded_examples_are_verbatim_copies_of_protocols_md() -> None:
    if not PROTOCOLS_MD.exists():
        pytest.skip(f"{PROTOCOLS_MD} is not next to this checkout; the embedded copies stand in for it")
    document = PROTOCOLS_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", document, re.S)
    for name, block in zip(BLOCK_FILES, blocks, strict=False):
        assert (EXAMPLES / name).read_text(encoding="utf-8") == block, name
    deleted = re.search(r"Deleted example: `(\{.*?\})`", document)
    assert deleted is not None
    assert example("brreg_deleted_unit.json") == json.loads(deleted.group(1))


# --- Proff RegisterCompany (PROTOCOLS.md 1.3, 1.4) ---------------------------------------------------------------


def test_proff_enk_example_maps_to_the_company_it_describes() -> None:
    company = map_proff(ENK_KEY, example("proff_register_company_enk.json"))

    address = Address(street="Storgata 12 B", postal_code="0184", city="Oslo", country="NO")
    assert company == Company(
        org_number="924880155",
        country="NO",
        name="KARI NORDMANN DESIGN",
        legal_form="ENK",
        status=CompanyStatus.ACTIVE,
        business_address=address,
        postal_address=address,
        nace_code="62.010",
        nace_text="Programmeringstjenester",
        employees=1,
        revenue=842,
        founded=dt.date(2022, 2, 1),
        website="www.nordmanndesign.no",
    )


def test_proff_dates_registration_is_dotted_and_established_is_iso() -> None:
    listing = parse_proff(example("proff_register_company_enk.json"))
    assert (listing.registration_date, listing.established_date) == (
        dt.date(2022, 2, 14),
        dt.date(2022, 2, 1),
    )
    dotted = map_proff(ENK_KEY, enk(establishedDate="01.02.2022"))  # unambiguous either way: accepted
    assert dotted.founded == dt.date(2022, 2, 1)
    with pytest.raises(RegistryMalformed):
        map_proff(ENK_KEY, enk(registrationDate="31.02.2022"))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"statusFlag": "ACTIVE", "description": "Aktiv"}, CompanyStatus.ACTIVE),
        ({"statusFlag": "active"}, CompanyStatus.ACTIVE),
        ({"statusFlag": "INACTIVE"}, CompanyStatus.INACTIVE),
        ({"statusFlag": "INACTIVE", "description": "Aktiv"}, CompanyStatus.INACTIVE),
    ],
)
def test_proff_status_is_read_from_status_flag(status: Any, expected: CompanyStatus) -> None:
    assert map_proff(ENK_KEY, enk(status=status)).status is expected


@pytest.mark.parametrize(
    "status",
    [
        ...,
        None,
        {},
        {"description": "Aktiv"},
        {"status": "Aktiv"},
        {"statusFlag": "DORMANT", "description": "Aktiv"},
        {"statusFlag": None},
        {"statusFlag": "***"},
        "ACTIVE",
        ["ACTIVE"],
    ],
)
def test_proff_body_without_a_known_status_flag_is_unknown_never_active(status: Any) -> None:
    assert map_proff(ENK_KEY, enk(status=status)).status is CompanyStatus.UNKNOWN


@pytest.mark.parametrize(
    ("employees", "revenue", "expected"),
    [
        ("1", "842", (1, 842)),
        ("1 204", "-120", (1204, -120)),
        (7, 10, (7, 10)),
        ("10-19", "12.5", (None, None)),
        ("ca. 5", "ukjent", (None, None)),
        ("Ikke oppgitt", "", (None, None)),
        ("-3", None, (None, None)),
        (None, ..., (None, None)),
        (..., ..., (None, None)),
        (True, False, (None, None)),
    ],
)
def test_proff_employees_and_revenue_only_from_plain_whole_numbers(
    employees: Any, revenue: Any, expected: tuple[int | None, int | None]
) -> None:
    company = map_proff(ENK_KEY, enk(numberOfEmployees=employees, revenue=revenue, empMin=10, empMax=19))
    assert (company.employees, company.revenue) == expected


@pytest.mark.parametrize(
    "location",
    [
        {"coordinates": [{"XCoordinate": 10.75, "YCoordinate": 59.91, "coordinateSystem": "EPSG:4326"}]},
        {"coordinates": [{"xCoordinate": 10.75, "yCoordinate": 59.91}]},
        {"coordinates": None},
        {"coordinates": []},
        None,
        ...,
    ],
)
def test_proff_coordinates_in_either_spelling_or_none_are_tolerated(location: Any) -> None:
    assert map_proff(ENK_KEY, enk(location=location)).name == "KARI NORDMANN DESIGN"


def test_proff_omitted_keys_nulls_and_unknown_keys_are_noise() -> None:
    optional = ("homePage", "email", "revenue", "numberOfEmployees", "naceCategories", "visitorAddress")
    omitted = map_proff(ENK_KEY, enk(**dict.fromkeys(optional, ...), brandNew={"nested": [1, {"x": None}]}))
    nulls = map_proff(ENK_KEY, enk(**dict.fromkeys(optional, None), companyType=None, name=None))

    for company in (omitted, nulls):
        assert company.status is CompanyStatus.ACTIVE
        assert (company.website, company.revenue, company.employees, company.nace_code) == (None,) * 4
        assert company.business_address is None and company.postal_address is not None
    assert (nulls.name, nulls.legal_form) == (None, None)


def test_proff_masked_values_and_fi_numbers() -> None:
    masked = map_proff(ENK_KEY, enk(name="***", homePage="*****"))
    assert (masked.name, masked.website) == (None, None)

    finnish = map_proff(CompanyKey("FI", "20774740"), enk(organisationNumber="2077474-0"))
    assert (finnish.country, finnish.org_number, finnish.business_address.country) == ("FI", "20774740", "FI")  # type: ignore[union-attr]
    with pytest.raises(RegistryMalformed, match="different organisation number"):
        map_proff(CompanyKey("FI", "20774740"), enk(organisationNumber="2077475-9"))


def _field_names(model: type[BaseModel]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        yield name
        yield field.alias or name
        for arg in getattr(field.annotation, "__args__", ()) or (field.annotation,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _field_names(arg)


def test_proff_personal_data_is_declared_nowhere_and_never_read() -> None:
    assert not PERSONAL_KEYS & set(_field_names(ProffCompany))
    assert not PERSONAL_KEYS & set(_field_names(Company))

    body = example("proff_register_company_enk.json")
    read = json.dumps(
        [parse_proff(body).model_dump(mode="json"), map_proff(ENK_KEY, body).model_dump(mode="json")]
    )
    for person_value in ("Kari Nordmann", "07031988", "3100452", "Innehaver", "INNH", "persons/business"):
        assert person_value not in read


# --- Brønnøysund (PROTOCOLS.md 2.2 - 2.4) ----------------------------------------------------------------------


def test_brreg_unit_example_maps_to_the_company_it_describes() -> None:
    company = map_brreg(UNIT_KEY, example("brreg_unit.json"))

    assert company == Company(
        org_number="915238475",
        country="NO",
        name="FJORDLYS DATA AS",
        legal_form="AS",
        status=CompanyStatus.ACTIVE,
        business_address=Address(
            street="Kong Oscars gate 20", postal_code="5003", city="BERGEN", country="NO"
        ),
        nace_code="62.010",
        nace_text="Programmeringstjenester",
        employees=14,
        founded=dt.date(2015, 2, 20),
        website="www.fjordlys.no",
    )


def test_brreg_deleted_example_is_deleted_with_its_name_and_nothing_else() -> None:
    company = map_brreg(DELETED_KEY, example("brreg_deleted_unit.json"))
    assert company == Company(
        org_number="933602184",
        country="NO",
        name="GAMLE BRYGGE AS",
        legal_form="AS",
        status=CompanyStatus.DELETED,
    )


def test_brreg_unit_tolerates_documented_noise_and_fails_closed_without_status_flags() -> None:
    unit = example("brreg_unit.json")
    unit["forretningsadresse"]["adresse"] = [None, "", "Kong Oscars gate 20"]
    unit.update(stiftelsesdato="", hjemmeside=None, postadresse=None, ukjentNokkel={"a": 1})
    company = map_brreg(UNIT_KEY, unit)
    assert (company.founded, company.website, company.business_address.street) == (  # type: ignore[union-attr]
        None,
        None,
        "Kong Oscars gate 20",
    )

    for flag in ("konkurs", "underAvvikling", "underTvangsavviklingEllerTvangsopplosning"):
        without = {key: value for key, value in example("brreg_unit.json").items() if key != flag}
        assert map_brreg(UNIT_KEY, without).status is CompanyStatus.UNKNOWN, flag


def batch_page(units: list[object], total: int | None = None) -> httpx.Response:
    """A HAL search page (PROTOCOLS.md 2.1/2.3) holding the literal example bodies; no ``_embedded`` if empty."""
    body: dict[str, Any] = {
        "_links": {"self": {"href": "https://data.brreg.no/enhetsregisteret/api/enheter"}},
        "page": {
            "size": 100,
            "totalElements": len(units) if total is None else total,
            "totalPages": 1,
            "number": 0,
        },
    }
    if units:
        body["_embedded"] = {"enheter": units}
    request = httpx.Request("GET", "https://data.brreg.no/enhetsregisteret/api/enheter")
    return httpx.Response(200, content=json.dumps(body).encode(), request=request)


def test_brreg_batch_page_of_the_examples_answers_every_number_asked() -> None:
    asked = ["915238475", "933602184", "924880155"]
    page = batch_page([example("brreg_unit.json"), example("brreg_deleted_unit.json")])

    results = brreg_batch_results(asked, page)

    assert results["915238475"].company == map_brreg(UNIT_KEY, example("brreg_unit.json"))
    assert results["933602184"].company.status is CompanyStatus.DELETED  # type: ignore[union-attr]
    assert results["924880155"].company.status is CompanyStatus.NOT_FOUND  # type: ignore[union-attr]
    empty = brreg_batch_results(asked, batch_page([]))
    assert {r.company.status for r in empty.values() if r.company} == {CompanyStatus.NOT_FOUND}
    assert len(empty) == 3


def test_brreg_batch_page_holding_part_of_its_hits_proves_no_absence() -> None:
    results = brreg_batch_results(
        ["915238475", "924880155"], batch_page([example("brreg_unit.json")], total=2)
    )
    assert results["915238475"].ok
    assert (results["924880155"].company, results["924880155"].error_code) == (None, "REGISTRY_MALFORMED")


# --- the sandbox renders only what PROTOCOLS.md shows --------------------------------------------------------------


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path in a JSON value, list items collapsed to ``[]``."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            paths |= {f"{prefix}{key}"} | key_paths(item, f"{prefix}{key}.")
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, f"{prefix}[].")
    return paths


#: Keys PROTOCOLS.md names in prose or tables rather than in an example body.
PROFF_DOCUMENTED = {
    "empMin",
    "empMax",
    "postalAddress.boxAddressLine",
    "visitorAddress.boxAddressLine",
    "personRoles.[].postalAddress.boxAddressLine",
    "location.coordinates.[].xCoordinate",
    "location.coordinates.[].yCoordinate",
}


def test_sandbox_proff_bodies_use_only_documented_keys_and_types() -> None:
    documented = key_paths(example("proff_register_company_enk.json")) | PROFF_DOCUMENTED
    companies = make_dataset(800, countries=("NO", "SE", "DK", "FI"), dissolved_share=0.2).companies
    flags = set()
    for company in companies:
        for masked in (False, True):
            body = render_proff(company, masked=masked)
            assert key_paths(body) <= documented, key_paths(body) - documented
            flags.add(body["status"]["statusFlag"])
            assert "status.status" not in key_paths(body)
            for key in ("numberOfEmployees", "revenue", "profit"):
                assert isinstance(body.get(key, ""), str), key
            assert re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", body["registrationDate"])
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", body["establishedDate"])
    assert flags == {"ACTIVE", "INACTIVE"}


def test_sandbox_brreg_bodies_use_only_documented_keys() -> None:
    full = key_paths(example("brreg_unit.json"))
    documented = full | {p.replace("forretningsadresse", "postadresse") for p in full}
    reduced = key_paths(example("brreg_deleted_unit.json")) | {"organisasjonsform.beskrivelse"}
    companies = make_dataset(800, countries=("NO",), dissolved_share=0.2).companies
    deleted = 0
    for company in companies:
        body = render_brreg(company, "https://data.brreg.no/enhetsregisteret/api")
        if "slettedato" in body:
            deleted += 1
            assert key_paths(body) <= reduced, key_paths(body) - reduced
        else:
            assert key_paths(body) <= documented, key_paths(body) - documented
    assert deleted > 0


# --- name search (PROTOCOLS.md 1.2 and 2.1: the endpoints; the Proff body shape is an assumption) ------------


def test_brreg_name_search_page_of_the_examples_gives_live_units_as_candidates() -> None:
    from worker.registry.brreg import brreg_candidates
    from worker.registry.search import search_answer

    page = batch_page([example("brreg_unit.json"), example("brreg_deleted_unit.json")])
    candidates = search_answer(page, brreg_candidates)

    unit = example("brreg_unit.json")
    assert [(c.country, c.org_number, c.name) for c in candidates] == [("NO", "915238475", unit["navn"])]
    assert candidates[0].legal_form == unit["organisasjonsform"]["kode"]  # the deleted unit is no candidate
    assert search_answer(batch_page([]), brreg_candidates) == []  # an empty page has no _embedded


def test_proff_name_search_reads_register_company_hits_and_fails_closed_on_another_shape() -> None:
    from worker.registry.proff import proff_candidates
    from worker.registry.search import search_answer

    def answer(body: object) -> httpx.Response:
        request = httpx.Request("GET", "https://api.proff.no/api/companies/register/NO?query=x")
        return httpx.Response(200, content=json.dumps(body).encode(), request=request)

    hits = search_answer(
        answer({"numberOfHits": 1, "companies": [enk()]}), lambda p: proff_candidates(p, "NO")
    )
    assert [(c.org_number, c.name, c.legal_form) for c in hits] == [
        ("924880155", "KARI NORDMANN DESIGN", "ENK")
    ]
    for body in ({"numberOfHits": 1}, {"companies": {"a": 1}}, ["not", "an", "object"]):
        with pytest.raises(RegistryMalformed):
            search_answer(answer(body), lambda p: proff_candidates(p, "NO"))
    with pytest.raises(RegistryMalformed):
        search_answer(httpx.Response(500, request=answer({}).request), lambda p: proff_candidates(p, "NO"))
