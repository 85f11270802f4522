"""Admin-triggered backfills: runs of kind ``backfill`` over a selection of records.

- ``options``: a run's options (filters, fields, dry run) and the planner's selection (``selection_for``).
- ``filters``: ``--where`` / ``--ids-file`` / ``--only-failed`` checked against describe and turned into SOQL.
- ``estimate``: the call arithmetic of a run (``run_bounds``) and ``--estimate`` for a backfill: counts first
  (one ``SELECT COUNT()``), then the upper bounds of the calls.
"""
