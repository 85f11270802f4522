"""Schedules per connection: cron in an IANA time zone, admin enable/disable, and the beat tick.

- ``spec`` / ``models``: the ``[schedule]`` table and its ledger row; ``cron``: slots around DST;
  ``policy``: what a due slot becomes; ``tick``: slots into runs, exactly once; ``store``: audited changes.
"""
