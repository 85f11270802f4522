"""The job-status HTTP API (FastAPI, under ``/v1``): API keys with roles, scoped to connections.

- ``app``: the application; ``middleware``: correlation id, security headers; ``problems``: error answers.
- ``deps``: who calls and what they may see; ``keys``: API keys; ``throttle``: per-key limits; ``context``.
- ``routes/``: one module per resource; ``schemas``: bodies; ``views`` / ``progress`` / ``pagination``: reads.
- ``metrics`` (+ ``alerts_port``): ``/metrics``; ``backfill_request``: a backfill body to the domain's options.
- ``models``: the API keys' tables.
"""
