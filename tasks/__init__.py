"""The Celery app and thin task entry points: parse arguments, call worker/, nothing else.

`celery -A tasks worker` finds the app here as ``tasks.app``.
"""

from tasks.app import app

__all__ = ["app"]
