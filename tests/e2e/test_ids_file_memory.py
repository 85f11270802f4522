"""Issue 12: a 1 GB `--ids-file` once took 3.5 minutes and 5.9 GB of memory. It is now read line by line, in
bounded pieces, and reading stops at the cap: the CLI refuses it in one line with bounded memory.

The CLI runs in a fresh wrapper process whose only child it is, so ``RUSAGE_CHILDREN`` is the CLI's own peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RegsyncEnv
from tests.e2e.test_admin_cli import CONNECTION_TOML
from worker.crm.ids import MAX_IDS, MAX_LINES, canonical_id

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

GIB = 1 << 30
#: A CLI process that imports what `backfill` needs peaks at about 80 MB; the 1 GB file must not add much to that.
PEAK_RSS_LIMIT_MB = 150

MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "stderr": done.stderr, "peak_mb": peak_kb / 1024}))
"""


def run_measured(cwd: Path, *args: str) -> dict[str, object]:
    environ = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8", "REGSYNC_ACTOR": "alice"}
    command = [sys.executable, "-c", MEASURE, sys.executable, "-m", "worker.cli.main", *args]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=environ, timeout=300, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def applied(env: RegsyncEnv, tmp_path: Path) -> Iterator[Path]:
    """A directory with the acme connection applied; its 1 GB ids file is removed afterwards (pytest keeps
    the last temporary directories)."""
    (tmp_path / "acme.toml").write_text(CONNECTION_TOML, encoding="utf-8")
    assert run_measured(tmp_path, "connection", "apply", "acme.toml")["rc"] == 0
    yield tmp_path
    (tmp_path / "ids.txt").unlink(missing_ok=True)


def _one_line_refusal(result: dict[str, object], *words: str) -> None:
    stderr = str(result["stderr"])
    assert result["rc"] == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert all(word in stderr for word in words), stderr


def test_a_1_gb_ids_file_of_distinct_ids_stops_at_the_cap_with_bounded_memory(applied: Path) -> None:
    path = applied / "ids.txt"
    with path.open("w", encoding="ascii") as out:  # MAX_IDS + 1 Ids, then padding up to 1 GiB
        out.writelines(canonical_id(f"001{n:012d}") + "\n" for n in range(MAX_IDS + 1))
        line = canonical_id("001999999999999") + "\n"
        out.write(line * ((GIB - out.tell()) // len(line)))
    assert path.stat().st_size > 0.99 * GIB

    result = run_measured(applied, "backfill", "acme", "--ids-file", "ids.txt")

    _one_line_refusal(result, "more than 100,000 record Ids")
    assert float(str(result["peak_mb"])) < PEAK_RSS_LIMIT_MB, result


def test_a_1_gb_ids_file_that_is_one_line_is_read_in_bounded_pieces(applied: Path) -> None:
    path = applied / "ids.txt"
    with path.open("wb") as out:
        out.truncate(GIB)  # one 1 GiB line of NUL characters (sparse: costs no disk)

    result = run_measured(applied, "backfill", "acme", "--ids-file", "ids.txt")

    _one_line_refusal(result, "line 1")
    assert float(str(result["peak_mb"])) < PEAK_RSS_LIMIT_MB, result


def test_a_1_gb_ids_file_of_one_id_repeated_stops_at_the_line_cap(applied: Path) -> None:
    path = applied / "ids.txt"
    line = (canonical_id("001000000000001") + "\n").encode()
    with path.open("wb") as out:
        block = line * 100_000
        while out.tell() < GIB:
            out.write(block)

    result = run_measured(applied, "backfill", "acme", "--ids-file", "ids.txt")

    _one_line_refusal(result, f"more than {MAX_LINES:,} lines")
    assert float(str(result["peak_mb"])) < PEAK_RSS_LIMIT_MB, result
