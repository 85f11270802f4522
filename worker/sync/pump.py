"""The registry pump: one per run, it keeps the registry busy at its rate while chunks talk to Salesforce.

It walks the run's planned org numbers (``Chunk.org_keys``) in chunk order, at most
``registry_pump_window_chunks`` ahead of the first unfinished chunk, and fetches each key through the run's
company cache (claim → GET → put: worker.sync.company_cache), so a key is asked once per run whoever asks it. The
connection's limiter paces it (cluster-wide, shared 429 back-off); requests in flight follow Little's law
(worker.sync.pump_pace). Chunks read the cache; a key the pump has not reached yet a chunk fetches itself, as
without a pump, so nothing ever waits on a dead pump for longer than its claims' ttl.

The pump runs in a thread of the worker process whose task claimed it (``start_pump``), so it takes no pool
slot from the chunks. Its heartbeat (several a second) extends its lease, stores its cursor, reports its calls
and reads the run: cancel, a budget pause or the run's end stop it within a beat. A pump that dies is resumed
by the sweeper from its cursor (worker.sync.sweeper), like a planner; its requests are tallied in Redis as they
go on the wire (worker.sync.send_tally), so the calls it made after its last report still reach the run's count.
A stopping pump keeps its lease until its requests in flight ended, then reports them all. Once the run closed, it
can send nothing more: the closing chunk refuses the run's requests before it counts them (worker.sync.run_closed).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from config.settings import Settings, get_settings
from worker.company import CompanyKey
from worker.errors import RegsyncError, StateConflict
from worker.registry.brreg import MAX_BATCH, BrregProvider
from worker.registry.port import RegistryProvider
from worker.sync import pump_ledger
from worker.sync.company_cache import CompanyCache
from worker.sync.outcomes import PumpOutcome
from worker.sync.pump_ledger import PumpClaim
from worker.sync.pump_pace import Pace, TimedLimiter
from worker.sync.pump_start import pump_wanted
from worker.sync.send_tally import pump_tally_for

log = logging.getLogger(__name__)

#: Seconds between two heartbeats (cancel is seen within one).
BEAT_S = 0.25
#: Seconds between two looks for new chunks when the window is full or planning has not stored more yet.
IDLE_S = 0.1

Item = tuple[int, CompanyKey]


def start_pump(run_id: int, *, settings: Settings | None = None, wait_for_it: bool = False) -> PumpOutcome:
    """Claim run ``run_id``'s pump and run it in a daemon thread of this process (or here, ``wait_for_it``)."""
    settings = settings or get_settings()
    if not pump_wanted(settings):
        return PumpOutcome.DISABLED
    claim = pump_ledger.claim(run_id, settings.plan_max_attempts)
    if claim is None:
        return PumpOutcome.NOT_CLAIMED
    if wait_for_it:
        run_claimed(claim, settings)
    else:
        threading.Thread(
            target=run_claimed, args=(claim, settings), name=f"pump-{run_id}", daemon=True
        ).start()
    return PumpOutcome.STARTED


def resume_if_lost(run_id: int, settings: Settings) -> None:
    """A chunk's check as it starts: the run's pump died (lease ran out)? Resume it in this process, now.

    The sweeper resends a lost pump too, but its message queues behind the run's chunks; this does not. One
    conditional UPDATE that matches nothing while the pump lives. Never fails the chunk.
    """
    if not pump_wanted(settings):
        return
    try:
        claim = pump_ledger.claim(run_id, settings.plan_max_attempts, resume_only=True)
    except RegsyncError as exc:
        log.warning("registry pump not checked: %s", exc.message, extra={"run_id": run_id})
        return
    if claim is not None:
        threading.Thread(
            target=run_claimed, args=(claim, settings), name=f"pump-{run_id}", daemon=True
        ).start()


def run_claimed(claim: PumpClaim, settings: Settings) -> None:
    """Run a claimed pump to its end; an error releases it for the sweeper (chunks fetch meanwhile)."""
    extra = {"run_id": claim.run_id, "attempt": claim.attempt, "seq": claim.seq}
    log.info("registry pump started", extra=extra)
    try:
        with _opened(claim, settings) as (registry, limiter, cache, rate):
            pace = Pace(
                rate,
                settings.registry_pump_latency_guess_s,
                settings.registry_pump_headroom,
                settings.registry_pump_max_in_flight,
            )
            Pump(claim, registry, limiter, cache, pace, settings=settings).run()
    except Exception as exc:  # a thread's last word: logged, the lease released, the run goes on without it
        message = exc.message if isinstance(exc, RegsyncError) else repr(exc)
        log.warning("registry pump stopped: %s", message, extra=extra)


@contextmanager
def _opened(
    claim: PumpClaim, settings: Settings
) -> Iterator[tuple[RegistryProvider, TimedLimiter, CompanyCache, float]]:
    from worker.registry.factory import make_provider
    from worker.sync.runtime import CountingLimiter, load_runtime, shared_stores

    runtime = load_runtime(claim.connection_id)
    stores = shared_stores(settings)
    tally = pump_tally_for(settings, claim.run_tag, claim.attempt)
    shared = stores.limiter(runtime)
    limiter = TimedLimiter(shared if tally is None else CountingLimiter(shared, tally))
    wide = settings.model_copy(update={"registry_concurrency": settings.registry_pump_max_in_flight})
    registry = make_provider(runtime.spec.registry, runtime.registry_token, limiter, wide)
    try:
        yield registry, limiter, stores.company_cache(claim.run_id), runtime.spec.registry.requests_per_second
    finally:
        registry.close()


class Pump:
    """One claimed pump's loop: refill keys from the ledger, keep ``pace.in_flight`` lookups going, beat."""

    def __init__(
        self,
        claim: PumpClaim,
        registry: RegistryProvider,
        limiter: TimedLimiter,
        cache: CompanyCache,
        pace: Pace,
        *,
        settings: Settings,
    ) -> None:
        self.claim = claim
        self.registry = registry
        self.limiter = limiter
        self.cache = cache
        self.pace = pace
        self.settings = settings
        self.owner = f"pump:{claim.attempt}"  # a later pump inherits a dead one's claims (same prefix)
        self.claim_ttl_s = settings.registry_timeout_s * 2 + 5.0
        self.unit = MAX_BATCH if isinstance(registry, BrregProvider) else 1  # brreg asks a batch per GET
        self.next_seq = claim.seq  # the first chunk seq not read into ``pending`` yet
        self.pending: deque[Item] = deque()
        self.in_flight: dict[Future[None], list[Item]] = {}
        #: Requests that ended, in the order they ended: O(1) per answer, where ``wait()`` over every request in
        #: flight cost the loop (and the GIL the limiter's thread waits for) O(in flight) per answer.
        self._done: queue.SimpleQueue[Future[None]] = queue.SimpleQueue()
        #: Keys of the requests in flight. The cache grants a key again to the owner that holds its claim, so
        #: a number that two chunks share would otherwise be asked twice while its first answer is on the way.
        self.asking: set[CompanyKey] = set()
        self.refill_at = 0.0
        self.planned_complete = False
        self.chunks_total = 0
        self._pool = ThreadPoolExecutor(max_workers=pace.cap, thread_name_prefix=f"pump-{claim.run_id}")

    def run(self) -> None:
        """Pump until done or told to stop; then, once every request it started has ended, report them all.

        The last report comes after the pool drained, so that a request still on its way when the pump stopped is
        counted too; the lease is held until then, so no other pump starts while this one's requests are out.
        """
        finished = False
        try:
            finished = self._loop()
        except StateConflict as exc:  # the run closed, or another pump took over: nothing more to fetch here
            log.info("registry pump stopped: %s", exc.message, extra={"run_id": self.claim.run_id})
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            if finished:
                pump_ledger.finish(self.claim, self.next_seq, self.registry.calls)
            else:
                pump_ledger.release(self.claim, self._cursor(), self.registry.calls)

    def _loop(self) -> bool:
        """True when every planned key was fetched; False when told to stop (cancel, pause, run ended, taken over)."""
        beat_at = 0.0
        while True:
            if time.monotonic() >= beat_at:
                if self._beat():
                    return False
                beat_at = time.monotonic() + BEAT_S
            self._refill()
            if self._finished():
                log.info("registry pump done", extra={"run_id": self.claim.run_id})
                return True
            self._submit()
            self._collect()

    def _beat(self) -> bool:
        """Heartbeat; True when the pump must stop (cancel, pause, run ended, taken over)."""
        state = pump_ledger.beat(self.claim, self._cursor(), self.registry.calls)
        self.planned_complete = state.planned_complete
        if state.stop is not None:
            log.info("registry pump stopped: %s", state.stop, extra={"run_id": self.claim.run_id})
            for future, part in self.in_flight.items():
                if future.cancel():  # never started: its keys' claims go back at once
                    self.cache.release([key for _, key in part], self.owner)
        return state.stop is not None

    def _refill(self) -> None:
        """Read the open chunks ahead into ``pending``, when it runs low (at most every IDLE_S while idle)."""
        if len(self.pending) >= 2 * self.pace.cap or time.monotonic() < self.refill_at:
            return
        window = self.settings.registry_pump_window_chunks
        ahead = pump_ledger.chunks_ahead(self.claim, self.next_seq, window)
        self.chunks_total = ahead.total
        self.next_seq = max(self.next_seq, ahead.start)  # chunks before it finished without the pump
        for seq, keys in ahead.chunks:
            self.pending.extend((seq, key) for key in keys)
            self.next_seq = seq + 1
        self.refill_at = 0.0 if ahead.chunks else time.monotonic() + IDLE_S

    def _finished(self) -> bool:
        done = not self.pending and not self.in_flight
        return done and self.planned_complete and self.next_seq >= self.chunks_total

    def _submit(self) -> None:
        room = self.pace.in_flight - len(self.in_flight)
        while room > 0 and self.pending:
            batch = self._next_batch(room * self.unit)
            won = set(self.cache.claim([key for _, key in batch], self.owner, self.claim_ttl_s))
            mine = [(seq, key) for seq, key in batch if key in won]
            for start in range(0, len(mine), self.unit):
                part = mine[start : start + self.unit]
                future = self._pool.submit(self._fetch, [key for _, key in part])
                self.in_flight[future] = part
                future.add_done_callback(self._done.put)
                self.asking.update(key for _, key in part)
                room -= 1

    def _next_batch(self, size: int) -> list[Item]:
        """Up to ``size`` pending items whose key is neither in flight nor earlier in the batch."""
        batch: dict[CompanyKey, Item] = {}
        while self.pending and len(batch) < size:
            seq, key = self.pending.popleft()
            if key not in self.asking and key not in batch:
                batch[key] = (seq, key)
        return list(batch.values())

    def _collect(self) -> None:
        if not self.in_flight:
            time.sleep(IDLE_S if not self.pending else 0)
            return
        try:
            done = [self._done.get(timeout=IDLE_S)]
        except queue.Empty:
            return
        while not self._done.empty():
            done.append(self._done.get_nowait())
        for future in done:
            self.asking.difference_update(key for _, key in self.in_flight.pop(future))
            if not future.cancelled():
                future.result()  # an error (auth, limiter wait, Redis) stops the pump: chunks fetch themselves

    def _fetch(self, keys: list[CompanyKey]) -> None:
        """One request's worth of keys: GET, store what was found, release the rest (a chunk asks again)."""
        self.limiter.forget()
        try:
            results = self.registry.lookup_many(keys)
        except BaseException:
            self.cache.release(keys, self.owner)
            raise
        granted = self.limiter.granted_at()
        if granted is not None:
            self.pace.observe(time.monotonic() - granted)
        found = {key: result.company for key, result in results.items() if result.company is not None}
        self.cache.put_many(found, self.owner)
        self.cache.release([key for key in keys if key not in found], self.owner)

    def _cursor(self) -> int:
        """The first chunk seq with a key not fetched yet (where a resumed pump starts)."""
        seqs = [self.pending[0][0]] if self.pending else []
        seqs += [part[0][0] for part in self.in_flight.values()]
        return min(seqs, default=self.next_seq)
