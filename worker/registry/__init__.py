"""Business-registry providers (Proff, Brønnøysund) behind one port, mapping to the canonical Company.

- ``port``: what the sync needs; ``proff`` / ``brreg``: the providers; ``factory``: building one from a spec.
- ``http``: the GET-only client with retries and correlation ids; ``lookup``: shared helpers;
  ``base_url``: base URLs checked and normalised; ``outcomes``: notices and out-of-scope skips.
"""
