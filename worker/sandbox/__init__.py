"""Sandbox servers that speak Salesforce's and the registries' real wire protocols over TLS (trustme CA).

Used by the tests, the benchmarks and `regsync demo`; never by production code paths.
"""
