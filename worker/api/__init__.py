"""The job-status HTTP API (FastAPI, under ``/v1``): API keys with roles, scoped to connections."""
