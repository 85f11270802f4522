"""Change-feed runs: pay for what changed, not for the size of the CRM.

- ``models``: watermarks, the overlap de-duplication (``feed_seen``), the CRM key index, change events.
"""
