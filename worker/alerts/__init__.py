"""Notice-period alerting: detectors over the ledger, the alert lifecycle, channels, escalation, reports."""
