"""The whole ledger schema: imports every module that defines tables, so ``metadata`` is complete.

Alembic's env.py and the schema tests use this, never a single models module. A feature that adds tables
keeps them in its own models module and adds one import line here.
"""

from __future__ import annotations

import worker.alerts.models as _alerts  # noqa: F401  (alerts, alert_transitions, alert_deliveries, …)
import worker.api.models  # noqa: F401  (api_keys, api_key_connections)
import worker.changes.models as _changes  # noqa: F401  (watermarks, feed_seen, key_index, change_events)
import worker.ledger.backfill_models as _backfills  # noqa: F401  (run_field_changes)
import worker.matching.models as _matching  # noqa: F401  (name_matches)
import worker.scheduling.models as _schedules  # noqa: F401  (schedules)
from worker.ledger.models import Base

metadata = Base.metadata

__all__ = ["Base", "metadata"]
