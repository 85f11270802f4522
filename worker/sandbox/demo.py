"""`regsync demo`: the real mass update, end to end, on the embedded default with sandbox servers.

Everything a production run does happens here too (same tasks, same ledger code, same HTTPS clients); only the
surroundings are embedded: a SQLite ledger in ./.regsync-demo, the sandbox Salesforce and registry over TLS with
a throwaway CA, and a Celery worker in this process on the memory transport (or on Redis when one answers).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import ConfigurationError

DEMO_ACCOUNTS = 2000
#: The Redis the demo uses as broker and limiter store by default: a DB of its own, away from DB 0.
DEMO_REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass(frozen=True, slots=True)
class DemoEnvironment:
    directory: Path
    database_url: str
    broker_url: str


def redis_answers(url: str = "redis://127.0.0.1:6379/0") -> bool:
    """True when a Redis server answers a PING within half a second."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def prepare(
    directory: Path, *, use_redis: bool | None = None, redis_url: str = DEMO_REDIS_URL
) -> DemoEnvironment:
    """A fresh demo folder and the environment (ledger, broker, key) that points regsync at it.

    Args:
        use_redis: Redis (``redis_url``) as broker; None: when it answers, else the in-process memory transport.
    """
    from worker.connections.secrets import generate_key

    if directory.exists():
        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(mode=0o700)
    database_url = f"sqlite:///{private_file(directory / 'ledger.sqlite3')}"
    use_redis = redis_answers(redis_url) if use_redis is None else use_redis
    if use_redis and not redis_answers(redis_url):
        raise ConfigurationError(
            f"Redis at {redis_url} does not answer; start it or run the demo with --no-redis"
        )
    broker_url = redis_url if use_redis else "memory://"
    if use_redis:
        os.environ["REGSYNC_REDIS_URL"] = redis_url
    os.environ.update(
        REGSYNC_DATABASE_URL=database_url,
        REGSYNC_BROKER_URL=broker_url,
        REGSYNC_SECRET_KEY=generate_key(),
        REGSYNC_ACTOR="demo",
    )
    from worker.infra.process_state import reset_process_state

    reset_process_state()  # everything cached from the environment before it was rewritten above
    return DemoEnvironment(directory, database_url, broker_url)


def private_file(path: Path) -> Path:
    """Create ``path`` empty, readable and writable by its owner only (0600), before SQLite opens it: the
    ledger holds the encrypted secrets and the audit trail. SQLite gives its journal the same mode."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)  # whatever the umask
    return path


def create_connection(spec_data: dict[str, Any], secrets: dict[str, str]) -> None:
    """Migrate the ledger, apply the connection and store its secrets, as an admin would."""
    from config.settings import get_settings
    from worker.connections.apply import apply_connection
    from worker.connections.secrets import set_secret
    from worker.connections.spec import parse_spec
    from worker.ledger.db import session_scope
    from worker.ledger.migrate import upgrade

    upgrade(get_settings().database_url)
    spec = parse_spec(spec_data)
    with session_scope() as session:
        apply_connection(session, spec, "demo")
    with session_scope() as session:
        for name, value in secrets.items():
            set_secret(session, spec.name, name, value, "demo")


@contextmanager
def embedded_worker(concurrency: int = 4) -> Iterator[None]:
    """A real Celery worker in this process (thread pool) on a queue of its own, stopped afterwards."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import get_app

    app = get_app()
    queue = f"regsync-demo-{os.getpid()}"
    app.conf.task_default_queue = queue
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[queue],
        shutdown_timeout=30.0,
    ):
        yield


@dataclass(frozen=True, slots=True)
class ScriptedFeed:
    """The feed changes `regsync demo --changes` scripted in the sandbox registry, by what they should do."""

    mapped: int  # a mapped field of a company in the CRM changed: fetched and synced
    unmapped: int  # only a path no mapping reads changed (revenue): matched, skipped as unmapped
    new: int  # new units the CRM does not hold: ignored
    deleted: int  # deleted from the register: the status becomes deleted
    removed: int  # removed from open data: the status is marked, the ledger purged

    @property
    def total(self) -> int:
        return self.mapped + self.unmapped + self.new + self.deleted + self.removed

    @property
    def matched(self) -> int:
        """Changes of companies the CRM holds (all but the new units)."""
        return self.total - self.new


#: Shares of the scripted changes (the rest are mapped changes).
_UNMAPPED, _NEW, _DELETED, _REMOVED = 0.15, 0.10, 0.10, 0.05


def crm_companies(stack: Any, country: str = "NO") -> list[Any]:
    """The active registry companies of ``country`` that accounts of the sandbox org point at (sorted)."""
    from worker.company import CompanyStatus
    from worker.errors import InvalidOrgNumber
    from worker.orgnr import normalise

    by_org = {(c.country, c.org_number): c for c in stack.dataset.companies}
    found: dict[str, Any] = {}
    for account in stack.dataset.accounts:
        if str(account.get("BillingCountryCode") or "") != country:
            continue
        try:
            org = normalise(country, account.get("Org_Number__c"))
        except InvalidOrgNumber:
            continue
        company = by_org.get((country, org))
        if company is not None and company.status is CompanyStatus.ACTIVE:
            found[org] = company
    return [found[org] for org in sorted(found)]


def script_feed_changes(stack: Any, count: int = 300, *, seed: int = 11, country: str = "NO") -> ScriptedFeed:
    """Script ``count`` feed changes in the sandbox registry (both feeds): mapped and unmapped changes, new units,
    deletions and removals, each of a different company of the CRM (new units: numbers nobody holds)."""
    import random

    from worker.company import Company
    from worker.sandbox.dataset import OrgNumbers

    rng = random.Random(seed)
    pool = crm_companies(stack, country)
    rng.shuffle(pool)
    unmapped, new, deleted, removed = (
        round(count * share) for share in (_UNMAPPED, _NEW, _DELETED, _REMOVED)
    )
    mapped = min(count - unmapped - new - deleted - removed, len(pool) - unmapped - deleted - removed)
    registry = stack.registry
    picks = iter(pool)
    for company in (next(picks) for _ in range(mapped)):
        employees = (company.employees or 0) + rng.randint(1, 40)
        registry.script_change(
            company.model_copy(update={"employees": employees, "name": f"{company.name} Nye"})
        )
    for company in (next(picks) for _ in range(unmapped)):
        registry.script_change(company.model_copy(update={"revenue": (company.revenue or 0) + 1000}))
    for company in (next(picks) for _ in range(deleted)):
        registry.script_delete(company.country, company.org_number)
    for company in (next(picks) for _ in range(removed)):
        registry.script_remove(company.country, company.org_number)
    taken = {(c.country, c.org_number) for c in stack.dataset.companies}
    numbers = OrgNumbers(random.Random(seed + 1))
    for index in range(new):
        org = numbers.next(country)
        while (country, org) in taken:
            org = numbers.next(country)
        taken.add((country, org))
        registry.script_new(Company(org_number=org, country=country, name=f"Nystartet {index} AS"))
    return ScriptedFeed(mapped, unmapped, new, deleted, removed)
