"""Registry requests counted per chunk attempt as they go on the wire, in Redis, so that a killed attempt's calls
still reach its run's ``registry_calls``.

An attempt that ends by itself (done, released, given up, run failed) adds its own in-memory count to the run, as
before. One that dies (SIGKILL, lost machine) cannot; whoever takes its chunk over (the sweeper's requeue, the next
claim, the sweeper's give-up) *retires* the attempt: it adds what this tally says the attempt sent, and from then on
the attempt's requests are refused (an attempt that was only slow, not dead, stops at its next request instead of
sending uncounted ones). A request counts when it is about to
go on the wire (after its connection is set up, when its rate-limit token is taken), so an attempt killed with
requests in flight may count up to ``registry_concurrency`` requests the registry never received: the count errs
on the side of the quota. Once the run closed, a request is refused here instead, before it is sent
(worker.sync.run_closed).

The run's registry pump (worker.sync.pump) is tallied the same way, per pump attempt: a pump reports its calls
with its heartbeat, and whoever takes a dead pump's run over, or closes the run, adds what it sent beyond its last
report (worker.sync.pump_ledger).

Redis key: ``regsync:run:{<run tag>}:sends``, field ``<chunk id>:<attempt>`` (``pump:<attempt>`` for the pump),
value the requests sent (``-(sent + 1)`` once retired);
dropped when the run closes, and expires a day after its last write anyway. Without Redis (the embedded demo: one
process) nothing is tallied.
"""

from __future__ import annotations

import logging

import redis
from sqlalchemy import update
from sqlalchemy.orm import Session

from config.settings import Settings
from worker.errors import AttemptSuperseded, RegsyncError, RunClosed
from worker.infra.shared_state import redis_errors, shared_redis
from worker.ledger.models import Run
from worker.sync.run_closed import closed_key

log = logging.getLogger(__name__)

SENDS_TTL_MS = 86_400_000


def _key(run_tag: str) -> str:
    return f"regsync:run:{{{run_tag}}}:sends"


def _field(chunk_id: int, attempt: int) -> str:
    return f"{chunk_id}:{attempt}"


def _pump_field(attempt: int) -> str:
    return f"pump:{attempt}"


# KEYS[1] the run's closed marker, KEYS[2] its tallies. ARGV[1] the attempt's field. -1: the run closed; -2: the
# attempt was retired (another took its work over). Neither is counted.
_TALLY_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') < 0 then return -2 end
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], TTL_MS)
return n
""".replace("TTL_MS", str(SENDS_TTL_MS))

# KEYS[1] the run's tallies. ARGV[1] the attempt's field. Returns what it sent; stores -(sent + 1), so that the
# attempt's later requests are refused and a second retire returns the same number.
_RETIRE_LUA = """
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n < 0 then return -n - 1 end
redis.call('HSET', KEYS[1], ARGV[1], -(n + 1))
redis.call('PEXPIRE', KEYS[1], TTL_MS)
return n
""".replace("TTL_MS", str(SENDS_TTL_MS))

_REFUSED: dict[int, type[RegsyncError]] = {-1: RunClosed, -2: AttemptSuperseded}


class SendTally:
    """Called once per registry request of one attempt (a chunk's or the pump's), as the request goes on the wire.

    Raises:
        RunClosed: the run closed meanwhile (worker.sync.run_closed); the request is not sent, nor counted.
        AttemptSuperseded: another attempt took this one's work over and counted its calls (:func:`retire`); the
            request is not sent, nor counted.
        SharedStateUnavailable: Redis failed; the request is not sent.
    """

    def __init__(self, client: redis.Redis, run_tag: str, field: str) -> None:
        self._keys = [closed_key(run_tag), _key(run_tag)]
        self._field = field
        self._tally = client.register_script(_TALLY_LUA)

    def __call__(self) -> None:
        with redis_errors("counting a registry request"):
            counted = int(self._tally(keys=self._keys, args=[self._field]))
        if counted in _REFUSED:
            raise _REFUSED[counted]()


def tally_for(settings: Settings, run_tag: str, chunk_id: int, attempt: int) -> SendTally | None:
    """The tally of one attempt; None without Redis (one process: no attempt can die alone)."""
    client = shared_redis(settings)
    return None if client is None else SendTally(client, run_tag, _field(chunk_id, attempt))


def pump_tally_for(settings: Settings, run_tag: str, attempt: int) -> SendTally | None:
    """The tally of one pump attempt; None without Redis (a pump runs only with Redis: worker.sync.pump_start)."""
    client = shared_redis(settings)
    return None if client is None else SendTally(client, run_tag, _pump_field(attempt))


def retire(settings: Settings, run_tag: str, chunk_id: int, attempt: int) -> int:
    """Registry requests a superseded chunk attempt sent, by its tally; it sends none after this.

    0 without Redis, or if Redis cannot say (logged). Called only for an attempt whose lease ran out and whose
    work another took over: one that was slow rather than dead stops at its next request (AttemptSuperseded), so
    what this returns is all it will ever have sent.
    """
    return _retire(settings, run_tag, _field(chunk_id, attempt))


def retire_pump(settings: Settings, run_tag: str, attempt: int) -> int:
    """:func:`retire`, for pump attempt ``attempt`` (0: no pump ran yet)."""
    return _retire(settings, run_tag, _pump_field(attempt)) if attempt > 0 else 0


def _retire(settings: Settings, run_tag: str, field: str) -> int:
    client = shared_redis(settings)
    if client is None:
        return 0
    try:
        with redis_errors("reading a dead attempt's registry requests"):
            sent = client.register_script(_RETIRE_LUA)(keys=[_key(run_tag)], args=[field])
    except RegsyncError as exc:
        log.warning(
            "a dead attempt's registry calls are not counted: %s", exc.message, extra={"attempt": field}
        )
        return 0
    return int(sent)


def charge_dead_attempt(
    session: Session, settings: Settings, run_id: int, *, run_tag: str, chunk_id: int, attempt: int
) -> int:
    """Add a dead attempt's registry requests to its run (in the caller's transaction); returns how many."""
    sent = retire(settings, run_tag, chunk_id, attempt)
    if sent:
        session.execute(update(Run).where(Run.id == run_id).values(registry_calls=Run.registry_calls + sent))
    return sent


def forget_run(settings: Settings, run_tag: str) -> None:
    """Drop a closed run's tallies (they expire by themselves too)."""
    client = shared_redis(settings)
    if client is not None:
        with redis_errors("dropping a closed run's registry request tallies"):
            client.delete(_key(run_tag))
