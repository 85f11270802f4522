"""When a run gets a registry pump, and who can send one (a dispatcher that knows the pump task)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from config.settings import Settings


@runtime_checkable
class PumpStarter(Protocol):
    """A dispatcher that can send a run's registry pump (worker.infra.dispatch.CeleryDispatcher)."""

    def pump(self, run_id: int) -> None: ...


def pump_wanted(settings: Settings) -> bool:
    """A pump only helps a cluster: its cache and limiter must be the ones every worker shares (Redis)."""
    from worker.infra.shared_state import shared_mode

    return settings.registry_pump and shared_mode(settings) == "redis"
