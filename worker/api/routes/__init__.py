"""The API's routers, one module per resource: ``runs``, ``backfills``, ``alerts``, ``settings``, ``report``,
``changes``, ``matches``, ``retention``, ``health``."""
