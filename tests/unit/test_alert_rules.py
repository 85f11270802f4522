"""Pure parts of alerting: detectors on hand-made ledger snapshots, evaluator planning, escalation arithmetic,
settings validation (72 h), payload safety, webhook signatures, report percentiles."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from worker.alerts.config import AlertsSpec
from worker.alerts.detectors import (
    Condition,
    api_budget_low,
    auth_revoked,
    detect,
    run_missed,
    run_overran,
    run_partially_failed,
    run_stalled,
    volume_anomaly,
)
from worker.alerts.escalation import channels_through, next_escalation, step_for, total_levels
from worker.alerts.evaluator import plan_changes
from worker.alerts.models import AlertKind
from worker.alerts.payload import safe_details
from worker.alerts.report import parse_since, percentile
from worker.alerts.signing import sign, verify
from worker.alerts.snapshot import ConnectionState, RunFacts, ScheduleFacts
from worker.connections.spec import parse_spec
from worker.errors import ConfigurationError

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


def run(run_id: int, status: str, at: dt.datetime, **values: Any) -> RunFacts:
    final = status in ("succeeded", "partially_failed", "failed", "skipped")
    fields: dict[str, Any] = {"started_at": at, "finished_at": at if final else None, "heartbeat_at": at}
    return RunFacts(
        id=run_id, kind=values.pop("kind", "manual"), status=status, queued_at=at, **(fields | values)
    )


def state(*runs: RunFacts, schedule: ScheduleFacts | None = None, **settings: Any) -> ConnectionState:
    ordered = tuple(sorted(runs, key=lambda r: (r.queued_at, r.id), reverse=True))
    schedules = (schedule,) if schedule is not None else ()
    return ConnectionState(1, "acme", True, AlertsSpec(**settings), ordered, schedules)


def good_history() -> list[RunFacts]:
    return [run(i, "succeeded", NOW - (6 - i) * HOUR, planned=100, updated=5) for i in range(1, 6)]


def test_healthy_history_has_no_condition() -> None:
    assert detect(state(*good_history(), run(9, "running", NOW - 5 * MIN)), NOW) == []


def test_partial_failure_counts_invalid_records_and_respects_the_threshold() -> None:
    at_threshold = run(7, "partially_failed", NOW - MIN, planned=100, failed=1, invalid=1)
    above = run(8, "partially_failed", NOW, planned=100, failed=1, invalid=2)

    assert run_partially_failed(state(at_threshold), NOW) == []
    (condition,) = run_partially_failed(state(at_threshold, above), NOW)
    assert condition.details["failure_share"] == 0.03 and condition.run_id == 8
    assert run_partially_failed(state(above, partial_failure_threshold=0.05), NOW) == []


def test_stall_is_measured_from_the_last_heartbeat() -> None:
    quiet = run(3, "running", NOW - HOUR, heartbeat_at=NOW - 29 * MIN)
    assert run_stalled(state(quiet), NOW) == []
    (condition,) = run_stalled(state(quiet), NOW + MIN)
    assert condition.subject == "run:3" and condition.detected_at == NOW + MIN


def test_overrun_is_separate_from_stall() -> None:
    busy = run(4, "running", NOW - 5 * HOUR, heartbeat_at=NOW - MIN)
    (condition,) = run_overran(state(busy), NOW)
    assert condition.detected_at == NOW - HOUR and run_stalled(state(busy), NOW) == []


def test_volume_anomaly_compares_with_the_median_and_ignores_backfills() -> None:
    history = good_history()
    leak = run(6, "succeeded", NOW, planned=100, updated=80)
    backfill = run(7, "succeeded", NOW + MIN, planned=3, updated=3, kind="backfill")

    (condition,) = volume_anomaly(state(*history, leak, backfill), NOW + MIN)
    assert (condition.subject, condition.details["value"], condition.details["median"]) == (
        "updated",
        80,
        5.0,
    )
    assert volume_anomaly(state(*history[:2], leak), NOW) == []  # too little history to judge


def test_auth_revoked_names_the_side_and_catches_a_run_still_closing() -> None:
    closing = run(5, "running", NOW, error_code="CRM_AUTH")
    (condition,) = auth_revoked(state(*good_history(), closing), NOW)
    assert condition.subject == "crm" and condition.kind is AlertKind.AUTH_REVOKED


def test_budget_low_from_a_paused_run_or_from_usage() -> None:
    assert api_budget_low(state(run(5, "paused_budget", NOW)), NOW)[0].details["paused"] is True
    used = run(6, "succeeded", NOW, api_used_after=9500, api_limit=10000)
    assert api_budget_low(state(used), NOW)[0].details["api_used"] == 9500
    assert api_budget_low(state(used, budget_share=0.96), NOW) == []


def test_missed_slot_ignores_slots_skipped_by_concurrency_policy() -> None:
    slot = NOW - HOUR
    schedule = ScheduleFacts(7, dt.timedelta(minutes=15))
    skipped = run(5, "skipped", slot, kind="scheduled", scheduled_for=slot, error_code="OVERLAP")
    missed = run(5, "skipped", slot, kind="scheduled", scheduled_for=slot, error_code="MISSED")

    assert run_missed(state(skipped, schedule=schedule), NOW) == []
    (condition,) = run_missed(state(missed, schedule=schedule), NOW)
    assert condition.subject == "schedule:7" and condition.detected_at == slot + 15 * MIN


def test_plan_changes_opens_new_keys_and_clears_vanished_ones() -> None:
    kept = Condition(1, AlertKind.RUN_FAILED, "runs", NOW)
    new = Condition(1, AlertKind.RUN_STALLED, "run:9", NOW)
    to_open, cleared = plan_changes([kept, new], [kept.key, (1, "run_overran", "run:8")])
    assert to_open == [new] and cleared == {(1, "run_overran", "run:8")}


STEPS = {
    "channels": {
        "a": {"type": "webhook", "url": "https://a.example"},
        "b": {"type": "webhook", "url": "https://b.example"},
    },
    "escalation": [
        {"channels": ["a"], "ack_timeout_minutes": 5},
        {"channels": ["b"], "ack_timeout_minutes": 7},
    ],
}


def test_escalation_levels_repeat_the_policy() -> None:
    spec = AlertsSpec.model_validate(STEPS | {"repeat": 1})
    assert total_levels(spec) == 4
    assert [step.channels for step in (step_for(spec, level) for level in range(4)) if step] == [
        ["a"],
        ["b"],
    ] * 2
    assert next_escalation(spec, 0, NOW) == NOW + 5 * MIN and next_escalation(spec, 3, NOW) is None
    assert channels_through(spec, 1) == ["a", "b"]


def test_without_a_policy_every_channel_is_told_once() -> None:
    spec = AlertsSpec.model_validate({"channels": STEPS["channels"]})
    assert total_levels(spec) == 1 and next_escalation(spec, 0, NOW) is None
    assert step_for(spec, 0).channels == ["a", "b"]  # type: ignore[union-attr]


@pytest.mark.parametrize("minutes", [72 * 60 + 1, 100 * 60])
def test_a_notice_period_above_72_hours_is_refused(minutes: int) -> None:
    data: dict[str, object] = {
        "name": "acme",
        "salesforce": {
            "token_url": "https://sf.example/t",
            "client_id": "c",
            "org_number_field": "O",
            "country": "NO",
        },
        "registry": {"provider": "proff", "base_url": "https://r.example"},
        "mapping": {"name": {"field": "Name"}},
        "alerts": {"notice_period_minutes": minutes},
    }
    with pytest.raises(ConfigurationError, match="refused: at most 4320 minutes"):
        parse_spec(data)
    assert (
        parse_spec(data | {"alerts": {"notice_period_minutes": 72 * 60}}).alerts.notice_period_minutes == 4320
    )


def test_escalation_steps_must_name_configured_channels() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        AlertsSpec.model_validate({"escalation": [{"channels": ["nowhere"]}]})


def test_webhook_urls_must_be_https() -> None:
    with pytest.raises(ValueError, match="https"):
        AlertsSpec.model_validate({"channels": {"a": {"type": "webhook", "url": "http://a.example"}}})


def test_payload_details_keep_only_identifier_like_values() -> None:
    details = {"run_id": 4, "error_code": "REGISTRY_AUTH", "slot": NOW.isoformat(), "note": "Acme AS, Oslo"}
    assert safe_details(details) == {"run_id": 4, "error_code": "REGISTRY_AUTH", "slot": NOW.isoformat()}


def test_signature_covers_timestamp_and_body() -> None:
    body, stamp = b'{"a":1}', int(NOW.timestamp())
    signature = sign("key", stamp, body)
    assert verify("key", str(stamp), body, signature, NOW.timestamp())
    assert not verify("key", str(stamp + 1), body, signature, NOW.timestamp())
    assert not verify("key", str(stamp), body + b" ", signature, NOW.timestamp())
    assert not verify("key", str(stamp), body, signature, NOW.timestamp() + 301)  # replayed too late


def test_report_helpers() -> None:
    assert parse_since("30d") == dt.timedelta(days=30) and parse_since("90m") == dt.timedelta(minutes=90)
    with pytest.raises(ConfigurationError):
        parse_since("soon")
    assert [percentile([5.0, 1.0, 3.0, 2.0], q) for q in (0.5, 0.95)] == [2.0, 5.0]
    assert percentile([], 0.5) is None


def test_missed_slots_are_judged_per_schedule_and_met_only_by_runs_of_its_mode() -> None:
    slot = NOW - HOUR
    full = ScheduleFacts(7, dt.timedelta(minutes=15), mode="full")
    changes = ScheduleFacts(8, dt.timedelta(minutes=15), (slot,), mode="changes")  # the tick never started it
    reconcile = run(5, "succeeded", slot, kind="scheduled", scheduled_for=slot, started_at=slot)
    ordered = (reconcile,)

    conditions = run_missed(ConnectionState(1, "acme", True, AlertsSpec(), ordered, (full, changes)), NOW)

    # The full run met the reconcile's slot; the changes schedule's slot at the same time had no changes run.
    assert [c.subject for c in conditions] == ["schedule:8"]
