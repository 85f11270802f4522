"""Registry change feeds: which companies changed since a watermark, read page by page.

Map:
- ``port.py``: FeedChange, FeedPage and the ChangeFeed protocol a changes run reads; ``feed_source`` names.
- ``brreg.py``: Brønnøysund's ``/oppdateringer/enheter`` (forward by ``oppdateringsid``, never deep pages).
- ``proff.py``: Proff's ``/api/changes/register/{country}`` (``since`` day + ``scrollId``; 30 days -> FeedGap);
  its assumptions (entity type label, scroll id, end of scroll) are named constants there.
- ``patch.py``: what both share: RFC 6902 paths, org numbers and bodies read fail-closed.
- ``paths.py``: ``canonical_fields``: which canonical fields a change's patch paths can change.
- ``factory.py``: ``feed_for`` / ``feed_http``: a connection's feed on a rate-limited registry client.

Readers only read: de-duplication (FeedSeen), watermarks and matching are the changes run's job.
"""
