"""Connection files: their schema, loading, and applying them to the ledger."""
