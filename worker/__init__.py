"""regsync's domain and its adapters, grouped by concept (README "Layout" has the table).

Kernel: ``errors`` (the one exception tree), ``company`` (the canonical company), ``orgnr`` (org-number checks),
``roles`` (API key roles), ``text_input`` (hostile input: control characters, ids, UTF-8, URLs), ``schema``
(every table, for Alembic). Features: ``sync/`` (one run), ``ratelimit/``, ``backfill/``, ``budget/``,
``scheduling/``, ``alerts/``; adapters: ``ledger/``, ``crm/``, ``registry/``, ``connections/``; edges: ``api/``,
``cli/``; plumbing: ``infra/``; test worlds and the demo: ``sandbox/``.
"""
