"""The job ledger: connections, runs, chunks, failures, record write state, secrets and audit events.

- ``db``: engines, sessions, errors translated once, compare-and-set and lock helpers; ``migrate``.
- ``models`` / ``backfill_models``: the tables; ``counters``: the run counters' one type.
- ``runs`` / ``chunks`` / ``cancel``: run and chunk lifecycles; ``writes``: write hashes;
  ``field_changes``: dry-run previews; ``views``: read models; ``audit``: the hash-chained audit log; ``upsert``.
"""
