"""The dead-man's switch: beat's pings reach a local monitor on their own thread; failures are logged by host.

A real HTTP receiver on 127.0.0.1 (tests/integration/heartbeat_receiver.py) plays Healthchecks.io / Cronitor.
Logging is configured as a regsync process configures it (JSON into a buffer, redaction on the handler), so
what the tests read is what an operator's log would hold, httpx's own request lines included.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.logging import configure_logging, forget_secrets
from config.settings import Settings
from tests.integration.heartbeat_receiver import Receiver, heartbeat_receiver
from worker.infra.deadman import DeadMansSwitch, public_part


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with heartbeat_receiver() as running:
        yield running


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    forget_secrets()


def wait_for(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def run_switch(url: str, interval_s: float, seconds: float) -> DeadMansSwitch:
    switch = DeadMansSwitch(url, interval_s)
    switch.start()
    time.sleep(seconds)
    switch.stop()
    switch.join(timeout=5)
    assert not switch.is_alive()
    return switch


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_switch_pings_every_interval_on_its_own_thread_until_stopped(receiver: Receiver) -> None:
    switch = DeadMansSwitch(receiver.url, 0.3)
    began = time.monotonic()
    switch.start()
    assert time.monotonic() - began < 0.1  # the caller (beat's start-up) is not held up
    wait_for(lambda: receiver.count() >= 5, 5)
    switch.stop()
    switch.join(timeout=5)
    stopped = time.monotonic()

    first, last = receiver.pings[0], receiver.pings[-1]
    assert 0.25 <= (last - first) / (receiver.count() - 1) <= 0.45, receiver.pings  # one per interval
    assert set(receiver.paths) == {f"/ping/{receiver.token}"}
    time.sleep(0.7)
    assert receiver.since(stopped) == []
    assert switch.failed == 0 and switch.sent == receiver.count()


def test_a_stalled_monitor_times_out_without_a_burst_of_catch_up_pings(
    receiver: Receiver, log: io.StringIO
) -> None:
    receiver.delay_s = 2.0  # answers long after the switch gave up (timeout = the 0.5 s interval)
    switch = run_switch(receiver.url, 0.5, 2.6)
    assert 3 <= receiver.count() <= 7, receiver.pings  # a ping per 0.5 s timeout, no catch-up burst
    assert switch.failed == switch.sent >= 3
    assert "heartbeat ping to http://127.0.0.1" in log.getvalue() and "ReadTimeout" in log.getvalue()


def test_failures_are_logged_with_the_host_and_never_the_token(receiver: Receiver, log: io.StringIO) -> None:
    run_switch(receiver.url, 0.2, 0.5)  # answered 200: httpx logs each request at INFO
    receiver.status = 500
    run_switch(receiver.url, 0.2, 0.5)
    refused = f"http://127.0.0.1:{closed_port()}/ping/{receiver.token}"
    run_switch(refused, 0.2, 0.5)

    text = log.getvalue()
    messages = [json.loads(line)["msg"] for line in text.splitlines()]
    host = public_part(receiver.url)
    assert f"heartbeat ping to {host} answered HTTP 500" in messages
    assert any(m.startswith("heartbeat ping to http://127.0.0.1:") and "ConnectError" in m for m in messages)
    assert any(m.startswith("HTTP Request: GET") for m in messages)  # httpx did log the requests ...
    assert receiver.token not in text  # ... with the token redacted


def test_the_heartbeat_url_is_https_or_local_http_and_a_refusal_never_repeats_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = "hc-ping-0f3a9c2e-token"
    monkeypatch.setenv("REGSYNC_HEARTBEAT_URL", f"http://hc-ping.com/{token}")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "https://" in str(refused.value) and token not in str(refused.value)

    monkeypatch.setenv("REGSYNC_HEARTBEAT_URL", f"https://hc-ping.com/{token}")
    settings = Settings()
    assert settings.heartbeat_url is not None and token not in repr(settings)
    assert (settings.heartbeat_interval_s, settings.beat_grace_s) == (60.0, 90.0)

    monkeypatch.delenv("REGSYNC_HEARTBEAT_URL")
    (tmp_path / "url").write_text(f"http://127.0.0.1:8080/{token}\n")
    monkeypatch.setenv("REGSYNC_HEARTBEAT_URL_FILE", str(tmp_path / "url"))
    from_file = Settings().heartbeat_url
    assert from_file is not None and from_file.get_secret_value() == f"http://127.0.0.1:8080/{token}"


def test_beat_grace_below_a_heartbeat_interval_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGSYNC_BEAT_GRACE_S", "5")
    with pytest.raises(ValidationError, match="beat_grace_s"):
        Settings()
