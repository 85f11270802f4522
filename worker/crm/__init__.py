"""CRM adapters (Salesforce on simple-salesforce) behind one port.

- ``port``: what planning and sync need; ``salesforce``: the client; ``auth`` / ``http``: tokens and TLS;
  ``translate``: the one error boundary; ``write_retry``: passing per-record refusals sent again.
- ``describe_check`` / ``describe_cache`` / ``value_fit``: the mapping and each value checked against describe.
- ``permissions``: least privilege; ``soql`` / ``ids``: safe SOQL text and record Ids.
- ``values``: a field value's JSON, comparable and hashed forms (pure, shared by the policies and the ledger).
"""
