"""Both feed readers against the sandbox registry over real TLS: pages, positions, requests, gaps, bad bodies."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from worker.changes.models import ChangeType
from worker.company import CompanyKey, CompanyStatus
from worker.connections.spec import RegistrySpec
from worker.errors import FeedGap, FeedMalformed, SecretMissing
from worker.feeds.factory import feed_for, feed_http
from worker.feeds.paths import canonical_fields
from worker.feeds.port import ChangeFeed, FeedPage
from worker.ratelimit.local import LocalRateLimiter
from worker.registry.factory import make_provider
from worker.registry.http import RegistryHttp, RetryPolicy
from worker.sandbox.dataset import Dataset, make_dataset
from worker.sandbox.registry import SandboxRegistry
from worker.sandbox.tls import RecordedRequest, SandboxCA

TOKEN = "proff-feed-token-81c2"
SETTINGS = Settings(registry_timeout_s=5.0, registry_max_retries=2, registry_concurrency=2)
FAST = RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.05)
NOW = dt.datetime.now(dt.UTC)
BRREG_FEED = "/enhetsregisteret/api/oppdateringer/enheter"


class CountingLimiter(LocalRateLimiter):
    def __init__(self) -> None:
        super().__init__(1000.0, 100)
        self.acquired = 0

    def acquire(self) -> None:
        self.acquired += 1
        super().acquire()


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SandboxCA:
    ca = SandboxCA(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle_path))
    return ca


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_dataset(120, countries=("NO",), seed=14, dissolved_share=0.0)


@pytest.fixture
def registry(ca: SandboxCA, dataset: Dataset) -> Iterator[SandboxRegistry]:
    with SandboxRegistry(ca, dataset.companies, proff_token=TOKEN) as sandbox:
        yield sandbox


def open_feed(
    kind: str, registry: SandboxRegistry, limiter: LocalRateLimiter, size: int = 1000
) -> tuple[ChangeFeed, RegistryHttp]:
    base_url = registry.proff_url if kind == "proff" else registry.brreg_url
    spec = RegistrySpec(provider=kind, base_url=base_url)  # type: ignore[arg-type]
    http = feed_http(spec, limiter, SETTINGS, policy=FAST)
    return feed_for(spec, TOKEN, http, size=size), http


def read(feed: ChangeFeed, position: str) -> list[FeedPage]:
    return list(feed.pages(position, NOW))


def feed_requests(registry: SandboxRegistry, path: str) -> list[RecordedRequest]:
    return [r for r in registry.requests if r.path.startswith(path)]


def script_mixed(registry: SandboxRegistry, dataset: Dataset, n: int) -> list[tuple[str, ChangeType]]:
    """``n`` scripted changes over active companies, every type in turn; returns (org number, type) in order."""
    active = [c for c in dataset.companies if c.status is CompanyStatus.ACTIVE]
    done: list[tuple[str, ChangeType]] = []
    for index, company in enumerate(active[:n]):
        at = NOW - dt.timedelta(hours=2, seconds=-index)
        match index % 5:
            case 0:
                registry.script_change(company.model_copy(update={"name": f"{company.name} NY"}), at=at)
                done.append((company.org_number, ChangeType.CHANGED))
            case 1:
                registry.script_delete("NO", company.org_number, at=at)
                done.append((company.org_number, ChangeType.DELETED))
            case 2:
                registry.script_remove("NO", company.org_number, at=at)
                done.append((company.org_number, ChangeType.REMOVED))
            case 3:
                registry.script_new(company, at=at)
                done.append((company.org_number, ChangeType.NEW))
            case _:
                registry.script_unknown(company.org_number, at=at)
                done.append((company.org_number, ChangeType.UNKNOWN))
    return done


# --- brreg ----------------------------------------------------------------------------------------------------


def test_brreg_feed_reads_forward_by_id_across_pages(registry: SandboxRegistry, dataset: Dataset) -> None:
    registry.feeds.add_brreg("915238475", "Endring", at=NOW - dt.timedelta(days=3))  # before the cutover
    scripted = script_mixed(registry, dataset, 25)
    limiter = CountingLimiter()
    feed, http = open_feed("brreg", registry, limiter, size=10)
    ids = [row.id for row in registry.feeds.brreg_rows][1:]

    pages = read(feed, feed.start_position(NOW - dt.timedelta(days=1)))

    assert [len(p.changes) for p in pages] == [10, 10, 5]
    assert [p.position for p in pages] == [str(ids[9]), str(ids[19]), str(ids[24])]
    assert [p.last for p in pages] == [False, False, True]
    changes = [c for p in pages for c in p.changes]
    assert [(c.key.org_number, c.type) for c in changes] == scripted
    assert [c.item_id for c in changes] == [str(i) for i in ids]
    asked = feed_requests(registry, BRREG_FEED)
    assert [r.method for r in asked] == ["GET"] * 3 == ["GET"] * feed.calls
    assert limiter.acquired == 3
    assert asked[0].query["dato"] == [feed.start_position(NOW - dt.timedelta(days=1)).removeprefix("dato:")]
    assert [r.query.get("oppdateringsid") for r in asked] == [None, [str(ids[10])], [str(ids[20])]]
    for request in asked:
        assert (request.query["size"], request.query["sort"], request.query["includeChanges"]) == (
            ["10"],
            ["id,ASC"],
            ["true"],
        )
        assert "page" not in request.query  # never deep pages

    again = read(feed, pages[-1].position)
    assert again == [FeedPage([], pages[-1].position, True)]
    http.client.close()


def test_brreg_scripted_changes_carry_paths_and_change_what_lookups_return(
    registry: SandboxRegistry, dataset: Dataset
) -> None:
    changed, deleted, removed = [c for c in dataset.companies if c.status is CompanyStatus.ACTIVE][:3]
    registry.script_change(changed.model_copy(update={"employees": (changed.employees or 0) + 7}))
    registry.script_delete("NO", deleted.org_number)
    registry.script_remove("NO", removed.org_number)
    feed, http = open_feed("brreg", registry, CountingLimiter())

    (page,) = read(feed, feed.start_position(NOW - dt.timedelta(minutes=5)))

    paths = page.changes[0].paths
    assert paths is not None and canonical_fields("brreg", paths) == frozenset({"employees"})
    assert [c.paths for c in page.changes[1:]] == [None, None]
    spec = RegistrySpec(provider="brreg", base_url=registry.brreg_url)
    provider = make_provider(spec, None, LocalRateLimiter(1000.0, 100), SETTINGS, policy=FAST)
    results = provider.lookup_many([CompanyKey("NO", c.org_number) for c in (changed,)])
    assert next(iter(results.values())).company.employees == (changed.employees or 0) + 7  # type: ignore[union-attr]
    single = {
        c.org_number: provider.lookup_many([CompanyKey("NO", c.org_number)]) for c in (deleted, removed)
    }
    statuses = {n: next(iter(r.values())).company.status for n, r in single.items()}  # type: ignore[union-attr]
    assert statuses == {
        deleted.org_number: CompanyStatus.DELETED,
        removed.org_number: CompanyStatus.DELETED,
    }
    replies = [r for r in registry.requests if r.path.endswith(removed.org_number)]
    assert len(replies) == 1 and registry.statuses[410] == 1  # Fjernet: 410 Gone; Sletting: 200 + slettedato
    provider.close()
    http.client.close()


def raw_get(registry: SandboxRegistry, ca: SandboxCA, path: str, **params: str) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(ca.bundle_path))
    with httpx.Client(verify=context) as client:
        return client.get(f"{registry.url}{path}", params=params, headers={"Authorization": f"Token {TOKEN}"})


def test_sandbox_brreg_feed_keeps_brregs_limits(registry: SandboxRegistry, ca: SandboxCA) -> None:
    first = registry.feeds.add_brreg(
        "915238475", "Endring", endringer=[{"op": "replace", "path": "/navn", "value": "X"}]
    )
    registry.feeds.add_brreg("933602184", "Sletting")

    inclusive = raw_get(registry, ca, BRREG_FEED, oppdateringsid=str(first)).json()
    assert [r["oppdateringsid"] for r in inclusive["_embedded"]["oppdaterteEnheter"]] == [first, first + 1]
    assert "endringer" not in inclusive["_embedded"]["oppdaterteEnheter"][0]  # only with includeChanges=true
    assert raw_get(registry, ca, BRREG_FEED, size="10000").status_code == 200
    assert raw_get(registry, ca, BRREG_FEED, size="10001").status_code == 400
    assert raw_get(registry, ca, BRREG_FEED, size="5000", page="1").status_code == 200
    assert raw_get(registry, ca, BRREG_FEED, size="5000", page="2").status_code == 400
    empty = raw_get(registry, ca, BRREG_FEED, oppdateringsid=str(first + 2)).json()
    assert "_embedded" not in empty and empty["page"]["totalElements"] == 0
    assert raw_get(registry, ca, BRREG_FEED, size="1").json()["page"]["size"] == 1


# --- Proff ----------------------------------------------------------------------------------------------------

PROFF_FEED = "/api/changes/register/NO"


def test_proff_feed_scrolls_across_pages_and_moves_to_the_newest_day(
    registry: SandboxRegistry, dataset: Dataset
) -> None:
    registry.feeds.proff_page_size = 10
    registry.feeds.add_proff(
        "NO", "915238475", "MUTATED", at=NOW - dt.timedelta(days=4)
    )  # before the cutover
    scripted = script_mixed(registry, dataset, 25)
    # Proff has no Ukjent, and a deletion is a MUTATED status (REMOVED comes 12 months later).
    as_proff = {ChangeType.DELETED: ChangeType.CHANGED}
    proff_types = [as_proff.get(t, t) for _, t in scripted if t is not ChangeType.UNKNOWN]
    limiter = CountingLimiter()
    feed, http = open_feed("proff", registry, limiter)
    start = feed.start_position(NOW - dt.timedelta(days=2))

    pages = read(feed, start)

    assert [len(p.changes) for p in pages] == [10, 10]
    changes = [c for p in pages for c in p.changes]
    assert [c.type for c in changes] == proff_types
    newest = (NOW - dt.timedelta(hours=2, seconds=-24)).date().isoformat()
    assert [(p.position, p.last) for p in pages] == [(start, False), (newest, True)]
    asked = feed_requests(registry, PROFF_FEED)
    assert len(asked) == len(pages) == feed.calls == limiter.acquired
    assert {r.method for r in asked} == {"GET"}
    assert {r.headers["authorization"] for r in asked} == {f"Token {TOKEN}"}
    first = asked[0].query
    assert (first["since"], first["withPatch"], first["types"]) == (
        [start],
        ["true"],
        ["ADDED", "REMOVED", "MUTATED"],
    )
    for request in asked[1:]:
        assert set(request.query) == {"scrollId"}
    assert all(c.paths for c in changes if c.type is ChangeType.CHANGED)
    http.client.close()


def test_proff_overlap_day_is_read_again_with_the_same_patch_ids(
    registry: SandboxRegistry, dataset: Dataset
) -> None:
    company = next(c for c in dataset.companies if c.status is CompanyStatus.ACTIVE)
    earlier = registry.script_change(
        company.model_copy(update={"website": "www.ny.no"}), at=NOW - dt.timedelta(days=1)
    )
    feed, http = open_feed("proff", registry, CountingLimiter())

    (first,) = read(feed, feed.start_position(NOW - dt.timedelta(days=3)))
    later = registry.script_change(company.model_copy(update={"website": "www.nyere.no"}))
    (second,) = read(feed, first.position)

    assert [c.item_id for c in first.changes] == [earlier.proff_patch_id]
    assert first.position == (NOW - dt.timedelta(days=1)).date().isoformat()
    assert [c.item_id for c in second.changes] == [earlier.proff_patch_id, later.proff_patch_id]
    assert canonical_fields("proff", second.changes[1].paths) == frozenset({"website"})
    http.client.close()


def test_proff_position_31_days_old_is_a_feed_gap_without_a_request(
    registry: SandboxRegistry, ca: SandboxCA
) -> None:
    feed, http = open_feed("proff", registry, CountingLimiter())
    old = (NOW - dt.timedelta(days=31)).date().isoformat()

    with pytest.raises(FeedGap, match="run a full reconcile"):
        read(feed, old)

    assert feed.calls == 0 and not feed_requests(registry, PROFF_FEED)
    assert (
        raw_get(registry, ca, PROFF_FEED, since=old).status_code == 400
    )  # the sandbox cannot serve it either
    thirty = (NOW - dt.timedelta(days=30)).date().isoformat()
    assert read(feed, thirty)[-1].last
    http.client.close()


@pytest.mark.parametrize("kind", ["brreg", "proff"])
@pytest.mark.parametrize("broken", ["not_json", "wrong_shape"])
def test_malformed_feed_body_is_one_clear_error(registry: SandboxRegistry, kind: str, broken: str) -> None:
    registry.feeds.break_next(kind, broken)  # type: ignore[arg-type]
    feed, http = open_feed(kind, registry, CountingLimiter())

    with pytest.raises(FeedMalformed) as caught:
        read(feed, feed.start_position(NOW - dt.timedelta(days=1)))

    assert caught.value.message.startswith(f"{kind} feed")
    assert "\n" not in caught.value.message and feed.calls == 1
    http.client.close()


def test_proff_feed_needs_a_token(registry: SandboxRegistry) -> None:
    spec = RegistrySpec(provider="proff", base_url=registry.proff_url)
    http = feed_http(spec, CountingLimiter(), SETTINGS, policy=FAST)
    with pytest.raises(SecretMissing):
        feed_for(spec, None, http)
    http.client.close()


def test_sandbox_proff_feed_filters_types_and_patches(
    registry: SandboxRegistry, ca: SandboxCA, dataset: Dataset
) -> None:
    script_mixed(registry, dataset, 10)
    since = (NOW - dt.timedelta(days=1)).date().isoformat()

    removed = raw_get(registry, ca, PROFF_FEED, since=since, types="REMOVED").json()
    bare = raw_get(registry, ca, PROFF_FEED, since=since).json()

    assert [e["changeType"] for e in removed["entities"]] == ["REMOVED", "REMOVED"]
    assert removed["numberOfHits"] == 2 and "next" not in removed
    assert bare["numberOfHits"] == 8 and not any("patch" in e for e in bare["entities"])  # withPatch absent
    assert raw_get(registry, ca, PROFF_FEED, since=since, types="DELETED").status_code == 400
    assert raw_get(registry, ca, PROFF_FEED, scrollId="bm9wZQ").status_code == 400


def test_feed_reads_log_no_org_numbers(
    registry: SandboxRegistry, dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    scripted = script_mixed(registry, dataset, 10)
    caplog.set_level(logging.DEBUG)
    for kind in ("brreg", "proff"):
        feed, http = open_feed(kind, registry, CountingLimiter())
        assert sum(len(p.changes) for p in read(feed, feed.start_position(NOW - dt.timedelta(days=1)))) >= 8
        http.client.close()

    logged = " ".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert "feed page" in logged
    assert not [number for number, _ in scripted if number in logged]
