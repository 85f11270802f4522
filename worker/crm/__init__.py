"""CRM adapters (Salesforce on simple-salesforce) behind one port; ``values``: a field value's JSON, comparable
and hashed forms (pure, shared by the field policies and the ledger)."""
