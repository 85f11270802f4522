"""Sandbox servers that speak Salesforce's and the registries' real wire protocols over TLS (trustme CA).

Used by the tests, the benchmarks and `regsync demo`; never by production code paths.

- ``tls``: the throwaway CA and HTTPS server; ``stack``: a whole world and its truth; ``dataset`` (+ words).
- ``salesforce`` (+ ``_oauth``, ``_schema``, ``_store``, ``_permissions``, ``soql``, ``soql_expr``): the org.
- ``registry`` (+ ``proff_json``, ``registry_json``): Proff and Brønnøysund; ``gc_pause``; ``demo``.
"""
