"""regsync's domain: ledger, registry and CRM clients, planning, sync, scheduling, alerting, security."""
