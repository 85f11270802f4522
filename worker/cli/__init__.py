"""The `regsync` command line (typer).

- ``main``: the root app; ``common``: errors, exit codes, the actor; ``tables`` / ``previews``: output.
- ``admin`` (connections, secrets, audit), ``schedule`` (schedule, enable, disable), ``apikey``, ``alerts``.
- ``runs`` (run, runs list/show/failures), ``backfill``, ``cancel``, ``resume``; ``health``; ``demo``; ``standby``.
"""
