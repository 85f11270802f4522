"""Where a run's company cache lives: a Redis hash pair per run (cluster), or this process's memory (demo).

Redis keys (one Cluster slot per run): ``regsync:run:{<run tag>}:companies`` (field ``CC:orgnr`` → Company
JSON) and ``…:claims`` (field → ``<chunk id>:<attempt>|<deadline µs, Redis time>``). Claims are taken and
released in Lua so that check-and-set is atomic across workers. Once the run closed (``…:closed``,
worker.sync.run_closed), a claim raises RunClosed and a store keeps nothing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import redis
from sqlalchemy import select

from config.settings import Settings
from worker.company import Company, CompanyKey
from worker.errors import RunClosed
from worker.infra import process_state
from worker.infra.shared_state import redis_errors, row_tag, shared_redis
from worker.ledger.db import session_scope
from worker.ledger.models import Run
from worker.sync.company_cache import CompanyCache, decode, encode, field_of
from worker.sync.run_closed import CLOSED_TTL_MS, closed_key

#: Milliseconds the run's hashes live after their last write (a run that never closes cleans up anyway).
CACHE_TTL_MS = 86_400_000

# KEYS[1] claims, KEYS[2] companies, KEYS[3] the run's closed marker. ARGV[1] owner, ARGV[2] owner's chunk prefix,
# ARGV[3] ttl µs, ARGV[4..] fields. -1: the run closed (worker.sync.run_closed), nothing claimed.
_CLAIM_LUA = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local value = ARGV[1] .. '|' .. string.format('%.0f', now + tonumber(ARGV[3]))
local won = {}
for i = 4, #ARGV do
  local f = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], f) == 0 then
    local cur = redis.call('HGET', KEYS[1], f)
    local free = true
    if cur then
      local sep = string.find(cur, '|', 1, true)
      local expired = tonumber(string.sub(cur, sep + 1)) < now
      free = expired or string.sub(cur, 1, string.len(ARGV[2])) == ARGV[2]
    end
    if free then
      redis.call('HSET', KEYS[1], f, value)
      won[#won + 1] = f
    end
  end
end
redis.call('PEXPIRE', KEYS[1], TTL_MS)
return won
""".replace("TTL_MS", str(CACHE_TTL_MS))

# KEYS[1] companies, KEYS[2] the run's closed marker. ARGV: field, JSON, field, JSON, ... Nothing once it closed.
_PUT_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV))
redis.call('PEXPIRE', KEYS[1], TTL_MS)
return 0
""".replace("TTL_MS", str(CACHE_TTL_MS))

# KEYS[1] claims. ARGV[1] owner, ARGV[2..] fields: drop the claims this owner holds.
_RELEASE_LUA = """
local prefix = ARGV[1] .. '|'
for i = 2, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.sub(cur, 1, string.len(prefix)) == prefix then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""


def _chunk_prefix(owner: str) -> str:
    return owner.split(":", 1)[0] + ":"


class RedisCompanyCache:
    """One run's cache in Redis, shared by every worker process."""

    def __init__(self, client: redis.Redis, run_tag: str) -> None:
        self._redis = client
        self._companies = f"regsync:run:{{{run_tag}}}:companies"
        self._claims = f"regsync:run:{{{run_tag}}}:claims"
        self._closed = closed_key(run_tag)
        self._claim = client.register_script(_CLAIM_LUA)
        self._put = client.register_script(_PUT_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    def get_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, Company]:
        if not keys:
            return {}
        with redis_errors("reading the run's company cache"):
            values = self._redis.hmget(self._companies, [field_of(key) for key in keys])
        return {key: decode(raw) for key, raw in zip(keys, values, strict=True) if raw is not None}

    def claim(self, keys: Sequence[CompanyKey], owner: str, ttl_s: float) -> list[CompanyKey]:
        by_field = {field_of(key): key for key in keys}
        args: list[str | int] = [owner, _chunk_prefix(owner), int(ttl_s * 1_000_000), *by_field]
        with redis_errors("claiming registry lookups"):
            won = self._claim(keys=[self._claims, self._companies, self._closed], args=args)
        if won == -1:
            raise RunClosed()
        return [by_field[raw.decode()] for raw in won]

    def put_many(self, companies: dict[CompanyKey, Company], owner: str) -> None:
        if not companies:
            return
        pairs = [part for key, company in companies.items() for part in (field_of(key), encode(company))]
        with redis_errors("storing fetched companies"):
            self._put(keys=[self._companies, self._closed], args=pairs)  # refused once closed: not kept
        self.release(list(companies), owner)

    def release(self, keys: Sequence[CompanyKey], owner: str) -> None:
        if not keys:
            return
        with redis_errors("releasing registry lookups"):
            self._release(keys=[self._claims], args=[owner, *(field_of(key) for key in keys)])

    def drop(self) -> None:
        with redis_errors("dropping the run's company cache"):
            self._redis.delete(self._companies, self._claims)
            self._redis.set(
                self._closed, b"1", px=CLOSED_TTL_MS
            )  # already set by the closing chunk, as a rule


class LocalCompanyCache:
    """One run's cache in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._companies: dict[CompanyKey, Company] = {}
        self._claims: dict[CompanyKey, tuple[str, float]] = {}
        self._closed = False

    def get_many(self, keys: Sequence[CompanyKey]) -> dict[CompanyKey, Company]:
        with self._lock:
            return {key: self._companies[key] for key in keys if key in self._companies}

    def claim(self, keys: Sequence[CompanyKey], owner: str, ttl_s: float) -> list[CompanyKey]:
        now, prefix, won = time.monotonic(), _chunk_prefix(owner), []
        with self._lock:
            if self._closed:
                raise RunClosed()
            for key in keys:
                holder = self._claims.get(key)
                free = holder is None or holder[1] < now or holder[0].startswith(prefix)
                if key not in self._companies and free:
                    self._claims[key] = (owner, now + ttl_s)
                    won.append(key)
        return won

    def put_many(self, companies: dict[CompanyKey, Company], owner: str) -> None:
        with self._lock:
            if not self._closed:
                self._companies.update(companies)
        self.release(list(companies), owner)

    def release(self, keys: Sequence[CompanyKey], owner: str) -> None:
        with self._lock:
            for key in keys:
                if self._claims.get(key, ("",))[0] == owner:
                    del self._claims[key]

    def drop(self) -> None:
        with self._lock:
            self._companies.clear()
            self._claims.clear()
            self._closed = True


_LOCAL: OrderedDict[str, LocalCompanyCache] = OrderedDict()
_LOCAL_LOCK = threading.Lock()
_LOCAL_RUNS = 8
process_state.register(__name__, "_LOCAL", _LOCAL.clear)


def _local_cache(run_tag: str) -> LocalCompanyCache:
    """The process's cache of a run, keeping the few most recently used runs only."""
    with _LOCAL_LOCK:
        cache = _LOCAL.pop(run_tag, None) or LocalCompanyCache()
        _LOCAL[run_tag] = cache
        while len(_LOCAL) > _LOCAL_RUNS:
            _LOCAL.popitem(last=False)
        return cache


def run_tag(run_id: int) -> str:
    """The key part naming run ``run_id`` in shared state (its id and when it was queued)."""
    with session_scope() as session:
        queued_at = session.execute(select(Run.queued_at).where(Run.id == run_id)).scalar_one()
    return row_tag(run_id, queued_at)


def company_cache(client: redis.Redis | None, run_id: int) -> CompanyCache:
    """The company cache of run ``run_id`` on ``client`` (a cluster), or this process's (no shared Redis)."""
    tag = run_tag(run_id)
    return _local_cache(tag) if client is None else RedisCompanyCache(client, tag)


def cache_for_run(settings: Settings, run_id: int) -> CompanyCache:
    """The company cache of run ``run_id``, where REGSYNC_SHARED_STATE says (a task has it in its SharedStores)."""
    return company_cache(shared_redis(settings), run_id)
