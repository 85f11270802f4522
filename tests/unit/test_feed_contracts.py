"""Contract tests for the feed readers: PROTOCOLS.md 1.7 and 2.5's example bodies parse into the FeedChanges
they describe, odd bodies fail closed with one clear error, and patch paths map to canonical fields as the
registry parsers read them (checked by perturbing real bodies through the real mappers).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.changes.models import ChangeType
from worker.company import CANONICAL_FIELDS, Company, CompanyKey, canonical_value
from worker.errors import FeedError, FeedGap, FeedMalformed, RegistryMalformed
from worker.feeds.brreg import BrregFeed, brreg_page, brreg_query
from worker.feeds.paths import NOT_PROVIDED, PROVIDERS, canonical_fields
from worker.feeds.port import FeedChange, FeedPage
from worker.feeds.proff import HISTORY_DAYS, ProffBatch, proff_batch, since_day
from worker.registry.brreg import map_brreg
from worker.registry.proff import map_proff

EXAMPLES = Path(__file__).parent / "protocol_examples"
PROTOCOLS_MD = Path(__file__).resolve().parents[3] / "shared" / "PROTOCOLS.md"
UTC = dt.UTC


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def test_feed_examples_are_verbatim_copies_of_protocols_md() -> None:
    if not PROTOCOLS_MD.exists():
        pytest.skip(f"{PROTOCOLS_MD} is not next to this checkout; the embedded copies stand in for it")
    document = PROTOCOLS_MD.read_text(encoding="utf-8")
    proff = document.split("### 1.7 Changes endpoint")[1].split("\n## ")[0]
    brreg = document.split("### 2.5 Change feed")[1].split("\n## ")[0]
    for section, name in ((proff, "proff_changes_page.json"), (brreg, "brreg_change_feed_page.json")):
        blocks = re.findall(r"```json\n(.*?)```", section, re.S)
        assert blocks == [(EXAMPLES / name).read_text(encoding="utf-8")], name


# --- brreg (PROTOCOLS.md 2.5) ------------------------------------------------------------------------------


def test_brreg_example_page_parses_into_its_changes_and_position() -> None:
    page = brreg_page(example("brreg_change_feed_page.json"), "26011841", 1000)

    assert page == FeedPage(
        changes=[
            FeedChange(
                item_id="26011842",
                key=CompanyKey("NO", "915238475"),
                type=ChangeType.CHANGED,
                paths=("/forretningsadresse/adresse/0", "/antallAnsatte"),
                at=dt.datetime(2026, 12, 2, 5, 14, 7, 311000, tzinfo=UTC),
            ),
            FeedChange(
                item_id="26011843",
                key=CompanyKey("NO", "933602184"),
                type=ChangeType.DELETED,
                paths=None,
                at=dt.datetime(2026, 12, 2, 5, 14, 7, 902000, tzinfo=UTC),
            ),
        ],
        position="26011843",
        last=True,
    )


def brreg_body(*rows: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(example("brreg_change_feed_page.json"))
    body["_embedded"]["oppdaterteEnheter"] = list(rows)
    return body


def row(item: int, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "oppdateringsid": item,
        "dato": "2026-12-02T05:14:07.311Z",
        "organisasjonsnummer": "915238475",
        "endringstype": kind,
        **extra,
    }


def test_brreg_all_five_types_and_a_full_page_that_is_not_last() -> None:
    kinds = {"Ny": ChangeType.NEW, "Endring": ChangeType.CHANGED, "Sletting": ChangeType.DELETED}
    kinds |= {"Fjernet": ChangeType.REMOVED, "Ukjent": ChangeType.UNKNOWN}
    page = brreg_page(brreg_body(*(row(10 + i, kind) for i, kind in enumerate(kinds))), "9", 5)

    assert [change.type for change in page.changes] == list(kinds.values())
    assert (page.position, page.last) == ("14", False)


def test_brreg_page_without_embedded_is_an_empty_last_page_that_keeps_the_position() -> None:
    body = example("brreg_change_feed_page.json")
    del body["_embedded"]
    assert brreg_page(body, "26011843", 1000) == FeedPage([], "26011843", True)
    assert brreg_page(body, "dato:2026-12-01T00:00:00.000Z", 10).position == "dato:2026-12-01T00:00:00.000Z"


def test_brreg_empty_patch_tells_nothing_and_a_move_changes_both_paths() -> None:
    move = [{"op": "move", "from": "/postadresse", "path": "/forretningsadresse"}]
    page = brreg_page(brreg_body(row(1, "Endring", endringer=[]), row(2, "Endring", endringer=move)), "0", 10)
    assert [change.paths for change in page.changes] == [None, ("/forretningsadresse", "/postadresse")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (brreg_body(row(12, "Omdanning")), "unknown endringstype"),
        (brreg_body(row(12, "Ny", organisasjonsnummer="915238476")), "invalid NO organisation number"),
        (brreg_body(row(12, "Ny"), row(11, "Ny")), "does not move forward"),
        (brreg_body(row(10, "Ny")), "does not move forward"),
        (brreg_body(row(12, "Ny", dato="yesterday")), "oppdaterteEnheter.0.dato"),
        (brreg_body(row(12, "Ny", dato="2026-12-02T05:14:07")), "oppdaterteEnheter.0.dato"),
        ({"_embedded": {"enheter": []}}, "oppdaterteEnheter"),
        ([1, 2], "brreg feed"),
    ],
)
def test_brreg_odd_bodies_fail_closed_in_one_line(body: Any, message: str) -> None:
    with pytest.raises(FeedMalformed, match=message) as caught:
        brreg_page(body, "10", 1000)
    assert "\n" not in caught.value.message and "915238476" not in caught.value.message


def test_brreg_positions_ask_inclusive_ids_or_the_first_runs_dato() -> None:
    feed = BrregFeed("https://data.brreg.no/enhetsregisteret/api", http=None, size=10)  # type: ignore[arg-type]
    start = feed.start_position(dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))

    assert start == "dato:2026-12-01T00:00:00.000Z"
    assert brreg_query(start) == {"dato": "2026-12-01T00:00:00.000Z"}
    assert brreg_query("26011843") == {"oppdateringsid": "26011844"}
    for bad in ("", "-3", "dato:never", "2026-12-01"):
        with pytest.raises(FeedError, match="reset the feed's watermark"):
            brreg_query(bad)
    with pytest.raises(ValueError, match=r"1\.\.10000"):
        BrregFeed("https://x.test", http=None, size=10_001)  # type: ignore[arg-type]


# --- Proff (PROTOCOLS.md 1.7) ------------------------------------------------------------------------------


def proff_changes(body: Any) -> list[FeedChange]:
    return proff_batch(body, "NO").changes


def test_proff_example_page_parses_into_its_changes_and_scroll_id() -> None:
    body = example("proff_changes_page.json")

    assert proff_changes(body) == [
        FeedChange(
            item_id="p-20261201-000173",
            key=CompanyKey("NO", "915238475"),
            type=ChangeType.CHANGED,  # no label, a non-empty patch
            paths=("/visitorAddress/addressLine",),
            at=dt.datetime(
                2026, 12, 6, 7, 0, tzinfo=UTC
            ),  # the example's patchId says 12-01: invented values
        ),
        FeedChange(
            item_id="p-20261201-000174",
            key=CompanyKey("NO", "998876125"),
            type=ChangeType.UNKNOWN,  # no label, an empty patch: re-fetch
            paths=None,
            at=dt.datetime(2026, 12, 6, 7, 0, 0, 512000, tzinfo=UTC),
        ),
    ]
    assert proff_batch(body, "NO").scroll == "c2Nyb2xsLTE"


def entity(**changes: Any) -> dict[str, Any]:
    first: dict[str, Any] = example("proff_changes_page.json")["entities"][0]
    return {**first, **changes}


@pytest.mark.parametrize(
    ("label", "expected"),
    [("ADDED", ChangeType.NEW), ("REMOVED", ChangeType.REMOVED), ("MUTATED", ChangeType.CHANGED)],
)
def test_proff_entity_label_gives_its_type(label: str, expected: ChangeType) -> None:
    assert proff_changes({"entities": [entity(changeType=label, patch=[])]})[0].type is expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"entities": [entity(changeType="RENAMED")]}, "unknown change type"),
        ({"entities": [entity(patchId="p" * 65)]}, "patchId"),
        ({"entities": [entity(patchId="")]}, "patchId"),
        ({"entities": [entity(createdDate="soon")]}, "createdDate"),
        ({"entities": [entity(id="915238476")]}, "invalid NO organisation number"),
        ({"numberOfHits": 0}, "entities"),
        (
            {"entities": [entity()], "next": {"href": "https://api.proff.no/api/changes/register/NO"}},
            "scrollId",
        ),
    ],
)
def test_proff_odd_bodies_fail_closed_in_one_line(body: Any, message: str) -> None:
    with pytest.raises(FeedMalformed, match=message) as caught:
        proff_batch(body, "NO")
    assert "\n" not in caught.value.message


def test_proff_scroll_ends_without_next_or_without_entities() -> None:
    next_link = example("proff_changes_page.json")["next"]
    assert proff_batch({"entities": [entity()]}, "NO").scroll is None
    assert proff_batch({"entities": [], "next": next_link}, "NO") == ProffBatch([], None, None)


def test_proff_position_older_than_its_history_is_a_gap_that_asks_for_a_reconcile() -> None:
    now = dt.datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    oldest = (now.date() - dt.timedelta(days=HISTORY_DAYS)).isoformat()

    assert since_day(oldest, now) == dt.date(2026, 12, 1)
    with pytest.raises(FeedGap, match="run a full reconcile") as caught:
        since_day("2026-11-30", now)
    assert (caught.value.code, caught.value.transient, caught.value.run_wide) == ("FEED_GAP", False, True)
    with pytest.raises(FeedError, match="not a day"):
        since_day("26011843", now)


# --- patch paths -> canonical fields -----------------------------------------------------------------------

#: For every canonical field and registry, a path that can change it.
FIELD_PATHS: dict[str, dict[str, str]] = {
    "name": {"brreg": "/navn", "proff": "/name"},
    "legal_form": {"brreg": "/organisasjonsform/kode", "proff": "/companyType"},
    "status": {"brreg": "/konkurs", "proff": "/status/statusFlag"},
    "street": {"brreg": "/forretningsadresse/adresse/0", "proff": "/visitorAddress/addressLine"},
    "postal_code": {"brreg": "/postadresse/postnummer", "proff": "/postalAddress/zipCode"},
    "city": {"brreg": "/forretningsadresse/poststed", "proff": "/visitorAddress/postPlace"},
    "address_country": {"brreg": "/forretningsadresse/landkode", "proff": "/visitorAddress"},
    "business_street": {"brreg": "/forretningsadresse/adresse", "proff": "/visitorAddress/boxAddressLine"},
    "business_postal_code": {"brreg": "/forretningsadresse/postnummer", "proff": "/visitorAddress/zipCode"},
    "business_city": {"brreg": "/forretningsadresse/poststed", "proff": "/visitorAddress/postPlace"},
    "business_country": {"brreg": "/forretningsadresse/landkode", "proff": "/visitorAddress/zipCode"},
    "postal_street": {"brreg": "/postadresse/adresse/1", "proff": "/postalAddress/addressLine"},
    "postal_postal_code": {"brreg": "/postadresse/postnummer", "proff": "/postalAddress/zipCode"},
    "postal_city": {"brreg": "/postadresse/poststed", "proff": "/postalAddress/postPlace"},
    "postal_country": {"brreg": "/postadresse/landkode", "proff": "/postalAddress"},
    "nace_code": {"brreg": "/naeringskode1/kode", "proff": "/naceCategories/0"},
    "nace_text": {"brreg": "/naeringskode1/beskrivelse", "proff": "/naceCategories"},
    "nace_full": {"brreg": "/naeringskode1", "proff": "/naceCategories/0"},
    "employees": {"brreg": "/antallAnsatte", "proff": "/numberOfEmployees"},
    "revenue": {"proff": "/revenue"},
    "founded": {"brreg": "/stiftelsesdato", "proff": "/establishedDate"},
    "website": {"brreg": "/hjemmeside", "proff": "/homePage"},
}


@pytest.mark.parametrize("provider", ["brreg", "proff"])
@pytest.mark.parametrize("field", CANONICAL_FIELDS)
def test_every_canonical_field_has_a_path_in_each_registry_or_is_not_provided(
    provider: str, field: str
) -> None:
    path = FIELD_PATHS.get(field, {}).get(provider)
    if path is None:
        assert field in NOT_PROVIDED[provider]
        for table_node in PROVIDERS[provider][1].values():
            assert field not in table_node.fields
        return
    assert field in canonical_fields(provider, (path,))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("provider", "paths", "expected"),
    [
        ("brreg", ("/navn",), {"name"}),
        ("brreg", ("/antallAnsatte", "/navn"), {"employees", "name"}),
        ("brreg", ("/antall_ansatte",), {"employees"}),  # the parser reads field names too
        ("brreg", ("/naeringskode1/kode",), {"nace_code", "nace_full"}),
        ("brreg", ("/forretningsadresse/kommune", "/naeringskode2/kode", "/registrertIMvaregisteret"), set()),
        ("brreg", ("/forretningsadresse/land", "/organisasjonsform/beskrivelse", "/ukjent~1nokkel"), set()),
        ("brreg", ("/slettedato",), {"status"}),
        ("proff", ("/status/description", "/personRoles/0/name", "/registrationDate", "/location"), set()),
        ("proff", ("/status",), {"status"}),
        ("proff", ("/revenue", "/profit"), {"revenue"}),
    ],
)
def test_paths_map_to_the_canonical_fields_the_parser_derives_from_them(
    provider: str, paths: tuple[str, ...], expected: set[str]
) -> None:
    assert canonical_fields(provider, paths) == frozenset(expected)


def test_unknown_paths_mean_every_field_and_unknown_providers_are_refused() -> None:
    assert canonical_fields("brreg", None) is None
    assert canonical_fields("proff", ("/name", "")) is None
    with pytest.raises(ValueError, match="no feed path table"):
        canonical_fields("bisnode", ("/name",))


@pytest.mark.parametrize("provider", ["brreg", "proff"])
def test_every_field_the_parser_reads_has_an_entry(provider: str) -> None:
    model, table = PROVIDERS[provider]
    assert set(table) == set(model.model_fields)
    for node in table.values():
        assert node.fields <= set(CANONICAL_FIELDS)
        if node.model is not None:
            assert set(node.children) == set(node.model.model_fields)
            assert all(child <= node.fields for child in node.children.values())


# --- the tables against the real mappers ---------------------------------------------------------------------


def leaves(value: Any, path: str = "") -> Iterator[str]:
    """Every JSON pointer in ``value``: objects, lists and their leaves."""
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}/{index}")


def other_text(value: str) -> str:
    """A different string the parser still accepts where this one was a date."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return (dt.date.fromisoformat(value) + dt.timedelta(days=40)).isoformat()
    if re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", value):
        return "01.01.2001"
    return f"{value} X" if value else "X"


def other(value: Any) -> Any:
    """A different value of the same kind (dates stay dates, so the parser accepts them)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 3
    if isinstance(value, str):
        return other_text(value)
    if isinstance(value, list):
        return [*value, *value] if value else ["12.345 Noe"]
    return None


def perturbed(body: Any, path: str) -> Iterator[Any]:
    """``body`` with the value at ``path`` changed, removed, and (for an object) emptied."""
    *parents, last = path.split("/")[1:]
    for kind in ("change", "remove", "empty"):
        copied = copy.deepcopy(body)
        holder = copied
        for part in parents:
            holder = holder[int(part)] if isinstance(holder, list) else holder[part]
        key: Any = int(last) if isinstance(holder, list) else last
        if kind == "change":
            holder[key] = other(holder[key])
        elif kind == "remove":
            holder.pop(key)
        elif isinstance(holder[key], dict):
            holder[key] = {}
        else:
            continue
        yield copied


def changed_fields(before: Company, after: Company) -> set[str]:
    return {f for f in CANONICAL_FIELDS if canonical_value(before, f) != canonical_value(after, f)}


def brreg_bodies() -> list[Any]:
    unit = example("brreg_unit.json")
    with_post = {
        **unit,
        "postadresse": {
            "adresse": ["Postboks 7", "Sentrum"],
            "postnummer": "5803",
            "poststed": "BERGEN",
            "landkode": "NO",
        },
    }
    only_post = {k: v for k, v in with_post.items() if k != "forretningsadresse"}
    return [unit, with_post, only_post, example("brreg_deleted_unit.json")]


def proff_bodies() -> list[Any]:
    enk = example("proff_register_company_enk.json")
    return [enk, {k: v for k, v in enk.items() if k != "visitorAddress"}]


def map_body(provider: str, key: CompanyKey, body: Any) -> Company:
    return map_brreg(key, body) if provider == "brreg" else map_proff(key, body)


BODIES: dict[str, Callable[[], list[Any]]] = {"brreg": brreg_bodies, "proff": proff_bodies}
NUMBER_KEY = {"brreg": "organisasjonsnummer", "proff": "organisationNumber"}


@pytest.mark.parametrize("provider", ["brreg", "proff"])
def test_no_path_changes_a_field_its_table_entry_leaves_out(provider: str) -> None:
    checked = 0
    for body in BODIES[provider]():
        key = CompanyKey("NO", body[NUMBER_KEY[provider]])
        before = map_body(provider, key, body)
        for path in leaves(body):
            allowed = canonical_fields(provider, (path,))
            assert allowed is not None
            for variant in perturbed(body, path):
                try:
                    after = map_body(provider, key, variant)
                except RegistryMalformed:
                    continue  # the parser refuses it: no field changes
                assert changed_fields(before, after) <= allowed, path
                checked += 1
    assert checked > 100
