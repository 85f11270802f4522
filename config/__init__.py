"""Typed settings, Celery and logging configuration for regsync (imports nothing of ours)."""
