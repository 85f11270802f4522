"""Typed settings, Celery configuration (with the task names) and logging for regsync (imports nothing of ours)."""
