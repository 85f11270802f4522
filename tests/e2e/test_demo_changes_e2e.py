"""`regsync demo --changes` (issue 14, acceptance 6): after the full run, a changes run over a few hundred scripted
feed changes, its counts checked against what was scripted, and what it cost against the full run.

Needs the changes planner (package P): until it is merged, a changes run plans like a full run.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.test_demo_e2e import assert_demo_succeeded, flat, run_demo


def test_demo_changes_prints_a_changes_run_and_its_cost(tmp_path: Path) -> None:
    done, elapsed = run_demo(tmp_path, "--no-redis", "--changes")
    output = flat(done)

    assert_demo_succeeded(done, elapsed, "in-process memory transport")
    scripted = re.search(
        r"scripted (\d+) changes in the registry's change feed: (\d+) of mapped fields, (\d+) of unmapped paths "
        r"only, (\d+) new units the CRM does not hold, (\d+) deleted, (\d+) removed",
        output,
    )
    assert scripted, output[-4000:]
    total, mapped, unmapped, new, deleted, removed = map(int, scripted.groups())
    assert total == 300 and mapped + unmapped + new + deleted + removed == total
    assert re.search(r"changes run \d+ of demo: (succeeded|partially_failed) in [\d.]+ s", output), output[
        -4000:
    ]
    assert f"changes seen {total}" in output and f"changes matched {total - new}" in output
    assert f"changes skipped (no mapped path) {unmapped}" in output
    assert "feed counts match what was scripted" in output and "do not match" not in output
    costs = re.findall(
        r"cost: (registry|Salesforce) calls (\d+) \(changes run\) against (\d+) \(full run\)", output
    )
    assert [name for name, _, _ in costs] == ["registry", "Salesforce"], output[-4000:]
    registry_changes, registry_full = int(costs[0][1]), int(costs[0][2])
    # Issue 14's target: registry calls ≤ feed pages + matched changes that touch a mapped path.
    assert registry_changes <= 1 + mapped + deleted + removed < registry_full
