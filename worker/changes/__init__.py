"""Change-feed runs: pay for what changed, not for the size of the CRM.

- ``models``: watermarks, the overlap de-duplication (``feed_seen``), the CRM key index, change events.
- ``keyindex``: record Id → normalised (country, org number); filled by the full plan, kept current by a
  SystemModstamp delta at the start of every changes run; matches feed items to records with no SOQL per item.
- ``plan``: a changes run's planner: the CRM delta, then feed pages, each page's chunks, events, counts and
  watermark in one transaction (exactly once through a killed worker); ``gap``: the ``feed_gap`` alert.
- ``planned``: what a chunk of a changes run does with the ``planned`` events of its records (settle them).
- ``events`` / ``review``: change events and the review queue (field policy ``review``; approve, reject).
- ``digest``: one notice per changes run that saw companies become bankrupt, dissolved or deleted.

The feed readers are ``worker.feeds`` (brreg ``oppdateringer``, Proff ``changes``, behind one port).
"""
