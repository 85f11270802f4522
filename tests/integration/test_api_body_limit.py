"""Acceptance 1 of issue 12: a huge body is refused with 413 before authentication, without being buffered.

The web process is a real ``uvicorn worker.api.app:create_app --factory`` subprocess, so its memory can be read
from ``/proc/PID/status`` before and after the attempt.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.alert_receivers import free_port
from tests.integration.api_world import A, ledger_env

REPO = Path(__file__).resolve().parents[2]
PATH = f"/v1/connections/{A}/backfills"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Web:
    process: subprocess.Popen[bytes]
    port: int

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    log = tmp_path_factory.mktemp("web") / "uvicorn.log"
    port = free_port()
    with ledger_env(REGSYNC_REDIS_URL="redis://127.0.0.1:1/0"), log.open("wb") as out:
        command = [sys.executable, "-m", "uvicorn", "worker.api.app:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        process = subprocess.Popen(
            command, cwd=REPO, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            _wait_listening(process, port, log)
            yield Web(process, port)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)


def _send_until_answered(web: Web, head: bytes, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` until the server answers (or stops reading); the answer and bytes sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        return _read_answer(sock), sent


def _read_answer(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    return answer


def _body(total: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    yield b'{"ids": ["' + b"0" * (chunk - 10)
    for _ in range(total // chunk - 1):
        yield b"0" * chunk


def _chunked(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    for piece in _body(total, chunk):
        yield b"%x\r\n%s\r\n" % (len(piece), piece)


def _head(headers: str) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}\r\n".encode()
    )


def test_a_50_mb_body_without_a_key_is_413_and_the_web_process_stays_small(web: Web) -> None:
    before = web.rss_kib()
    answer, _sent = _send_until_answered(web, _head(f"Content-Length: {50 * MIB}\r\n"), _body(50 * MIB))
    growth_mib = (web.rss_kib() - before) / 1024
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    print(f"50 MB Content-Length body: RSS growth {growth_mib:.1f} MiB")
    assert growth_mib < 20, growth_mib


def test_a_chunked_body_over_the_limit_is_413_without_a_key(web: Web) -> None:
    before = web.rss_kib()
    answer, sent = _send_until_answered(web, _head("Transfer-Encoding: chunked\r\n"), _chunked(50 * MIB))
    growth_mib = (web.rss_kib() - before) / 1024
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    print(f"chunked body: {sent / MIB:.1f} MiB sent before 413, RSS growth {growth_mib:.1f} MiB")
    assert sent < 10 * MIB and growth_mib < 20, (sent, growth_mib)


def test_a_body_under_the_limit_still_reaches_authentication(web: Web) -> None:
    body = b'{"dry_run": true}'
    head = _head(f"Content-Length: {len(body)}\r\n")
    answer, _sent = _send_until_answered(web, head, iter([body]))
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]
