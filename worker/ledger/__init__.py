"""The job ledger: connections, runs, chunks, failures, record write state, secrets and audit events."""
