"""Process plumbing shared by every part of regsync.

- ``shared_state``: Redis or local: the one client per process, and errors translated at the boundary.
- ``dispatch``: sending tasks (Celery, or in-process for the demo and tests).
- ``heartbeat`` / ``deadman`` / ``health``: processes note they are alive; beat pings an outside monitor;
  ``/v1/health`` and ``regsync health`` read both.
- ``metrics``: Prometheus counters and histograms.
- ``tls``: the client TLS context (TLS 1.2+, system store plus an extra CA).
"""
