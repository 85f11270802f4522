"""A connection at run time: its spec and decrypted secrets, and the CRM and registry clients built from them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.settings import Settings
from worker.connections.spec import ConnectionSpec, parse_spec
from worker.crm.port import CrmClient
from worker.errors import ConnectionNotFound, SecretMissing
from worker.ledger.db import session_scope
from worker.ledger.models import Connection
from worker.registry.port import RateLimiter, RegistryProvider

if TYPE_CHECKING:  # redis and the stores load with the first task, not with every CLI command
    import redis

    from worker.budget.store import BudgetStore
    from worker.sync.company_cache import CompanyCache


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a task needs to talk to one connection's CRM and registry. ``repr`` shows no secret."""

    connection_id: int
    name: str
    spec: ConnectionSpec
    crm_secret: str
    registry_token: str | None

    def __repr__(self) -> str:
        return f"Runtime(connection_id={self.connection_id}, name={self.name!r})"


def load_runtime(connection_id: int) -> Runtime:
    """Read a connection and decrypt its secrets (registering them for log redaction)."""
    from worker.connections.secrets import get_secret

    with session_scope() as session:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise ConnectionNotFound(f"connection {connection_id} no longer exists")
        spec = parse_spec(connection.spec)
        crm_name, registry_name = spec.secret_names()
        crm_secret = get_secret(session, connection_id, crm_name)
        try:
            token: str | None = get_secret(session, connection_id, registry_name)
        except SecretMissing:
            if (
                spec.registry.provider != "brreg"
            ):  # Brønnøysund is open data; Proff needs the customer's token
                raise
            token = None
    return Runtime(connection_id, connection.name, spec, crm_secret, token)


@dataclass(frozen=True, slots=True)
class SharedStores:
    """The cluster-wide state a task uses: Redis in a cluster, this process's memory in the demo, decided once
    (``REGSYNC_SHARED_STATE``, worker.infra.shared_state) for the rate limiter, company cache and budget store.
    """

    #: The shared Redis, or None when the state lives in this process.
    redis: redis.Redis | None
    budget: BudgetStore

    def limiter(self, runtime: Runtime) -> RateLimiter:
        """The rate limiter of this connection's registry token."""
        from worker import ratelimit

        return ratelimit.limiter_for(
            self.redis, runtime.connection_id, runtime.spec.registry, runtime.registry_token
        )

    def company_cache(self, run_id: int) -> CompanyCache:
        """Run ``run_id``'s company cache (each org number fetched once per run)."""
        from worker.sync.company_cache_stores import company_cache

        return company_cache(self.redis, run_id)


def shared_stores(settings: Settings) -> SharedStores:
    """Where this task keeps cluster-wide state, as the settings say."""
    from worker.budget.store import store_for
    from worker.infra.shared_state import shared_redis

    client = shared_redis(settings)
    return SharedStores(client, store_for(client))


def limiter_for(runtime: Runtime, settings: Settings) -> RateLimiter:
    """The rate limiter of this connection's registry token: cluster-wide (Redis) or this process's (demo)."""
    return shared_stores(settings).limiter(runtime)


#: Called once per registry request as it goes on the wire, by the clients :func:`open_clients` opens while it is
#: set (a chunk attempt's worker.sync.send_tally.SendTally; see :func:`counting_registry_sends`).
_ON_REGISTRY_SEND: ContextVar[Callable[[], None] | None] = ContextVar("on_registry_send", default=None)


@contextmanager
def counting_registry_sends(on_send: Callable[[], None] | None) -> Iterator[None]:
    """Clients opened inside the block call ``on_send`` for every registry request they send."""
    token = _ON_REGISTRY_SEND.set(on_send)
    try:
        yield
    finally:
        _ON_REGISTRY_SEND.reset(token)


class CountingLimiter:
    """A rate limiter that also reports each request it lets go: ``acquire`` is called exactly once per request,
    right before its headers are written (worker.registry.http._SendGate)."""

    def __init__(self, inner: RateLimiter, on_send: Callable[[], None]) -> None:
        self._inner = inner
        self._on_send = on_send

    def acquire(self) -> None:
        self._inner.acquire()
        self._on_send()

    def penalise(self, retry_after_s: float) -> None:
        self._inner.penalise(retry_after_s)


Opened = tuple[Runtime, CrmClient, RegistryProvider]
#: Builds the clients of one connection for the length of one task (swapped for fakes in unit tests).
ClientFactory = Callable[[int, Settings], AbstractContextManager[Opened]]


@contextmanager
def open_clients(connection_id: int, settings: Settings) -> Iterator[Opened]:
    """The real Salesforce and registry clients of a connection, closed afterwards."""
    from worker.budget.control import record_usage
    from worker.crm.salesforce import SalesforceClient
    from worker.registry.factory import make_provider

    runtime = load_runtime(connection_id)
    stores = shared_stores(settings)
    crm = SalesforceClient(runtime.spec, runtime.crm_secret, timeout_s=settings.crm_timeout_s)
    limiter = stores.limiter(runtime)
    on_send = _ON_REGISTRY_SEND.get()
    if on_send is not None:
        limiter = CountingLimiter(limiter, on_send)
    registry = make_provider(runtime.spec.registry, runtime.registry_token, limiter, settings)
    try:
        yield runtime, crm, registry
    finally:
        registry.close()
        crm.close()
        record_usage(
            connection_id, crm, settings, store=stores.budget
        )  # every Salesforce call counts against the daily budget
