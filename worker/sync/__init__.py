"""One run, from plan to close, and its recovery: the answer to "what happens to one chunk".

- ``plan``: stream the CRM's records, validate org numbers, store chunks with a resumable cursor (``plan_run``).
- ``chunk``: one chunk: claim → attempt → finish, retry, give up or fail the run (``sync_chunk``).
- ``chunk_work``: one attempt's steps: re-read → look up → apply policies → write only changes (``ChunkWork``).
- ``outcomes``: what ``sync_chunk`` and ``plan_run`` return (``ChunkOutcome``, ``PlanOutcome``; metrics labels).
- ``policies``: per field, what a registry value does to a CRM value (overwrite, fill_blank, protect_manual).
- ``preview``: a dry run's per-field tally of what a chunk would change.
- ``company_cache`` / ``company_cache_stores``: the per-run cache that fetches each org number once per run.
- ``runtime``: the per-connection composition root: spec, secrets, CRM and registry clients, limiter.
- ``failures``: every exception a planner or chunk meets, classified once (transient or permanent).
- ``send_tally``: registry requests counted as they go on the wire, per attempt (killed attempts count too).
- ``sweeper``: finds lost work (killed workers, lost messages, paused runs) and resends it, within budgets.
- ``runner``: start a run and wait for it (CLI, API, demo).
"""
