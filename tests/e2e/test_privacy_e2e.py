"""Issue 2, acceptance 4: the whole admin + run flow through the CLI, with every byte of output searched for secrets.

The CLI runs as subprocesses (``python -m worker.cli.main``) against one real ``celery worker`` process on Redis
(DEBUG, JSON logs) and the TLS sandbox. Neither the registry token, nor the Salesforce client secret, nor any
access token the sandbox issued, nor the ledger's encryption key appears in any CLI output, worker log line or
ledger row, and neither does any person a Proff sole-proprietorship listing names. The sandbox registry's
request log shows only GETs of ``/api/companies/register/{CC}/{orgnr}`` for valid org numbers of the dataset,
with our headers and nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import RegsyncEnv
from tests.integration.celery_cluster import ClusterEnv, celery_cluster, unique_queue
from tests.integration.privacy_scan import found_in, ledger_text, person_values
from worker.errors import InvalidOrgNumber
from worker.orgnr import normalise
from worker.sandbox.registry import PROFF_PREFIX
from worker.sandbox.stack import Stack, sandbox_stack

CONNECTION = "privacy"
ACCOUNTS = 600
ALLOWED_HEADERS = {
    "authorization",
    "api-version",
    "correlation-id",
    "accept",
    "accept-encoding",
    "user-agent",
    "host",
    "connection",
}
RUN_KEYS = {"id", "connection", "kind", "status", "queued_at", "started_at", "finished_at", "duration_s"}
COUNT_KEYS = {
    "planned",
    "invalid",
    "fetched",
    "unchanged",
    "updated",
    "failed",
    "registry_calls",
    "crm_calls",
}


def toml_value(value: Any) -> str:
    """A TOML literal for a scalar or an inline table (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def to_toml(data: dict[str, Any]) -> str:
    """Top-level scalars, then one ``[table]`` per top-level dict (nested dicts become inline tables)."""
    lines = [f"{key} = {toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{name} = {toml_value(value)}" for name, value in table.items()]
    return "\n".join(lines) + "\n"


class Cli:
    """``python -m worker.cli.main`` in the test's world; keeps every output for the secret search."""

    def __init__(self, env: ClusterEnv, cwd: Path) -> None:
        self.environ = env.subprocess_env(REGSYNC_ACTOR="privacy-admin")
        self.cwd = cwd
        self.outputs: list[str] = []

    def __call__(self, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=self.cwd,
            env=self.environ,
            timeout=timeout,
            check=False,
        )
        self.outputs += [done.stdout, done.stderr]
        return done


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with sandbox_stack(tmp_path / "sandbox", ACCOUNTS, countries=("NO", "SE", "DK")) as started:
        yield started


@pytest.fixture
def world(env: RegsyncEnv, redis_url: str, stack: Stack) -> ClusterEnv:
    return ClusterEnv(
        database_url=env.database_url,
        redis_url=redis_url,
        secret_key=env.secret_key,
        ca_bundle=stack.ca.bundle_path,
        queue=unique_queue("regsync-e2e"),
    )


def secret_forms(values: Iterable[str]) -> set[str]:
    """Each value as it could appear in text: raw, percent-encoded, form-encoded."""
    return {form for value in values for form in (value, quote(value, safe=""), quote_plus(value))}


def issued_access_tokens(stack: Stack) -> set[str]:
    """The Bearer tokens our clients presented to the sandbox Salesforce (all it issued and we used)."""
    headers = (request.headers.get("authorization", "") for request in stack.salesforce.requests)
    return {value[len("Bearer ") :] for value in headers if value.startswith("Bearer ")}


def valid_keys(stack: Stack) -> set[tuple[str, str]]:
    """(country, compact org number) of every account whose org number is valid."""
    keys = set()
    for account in stack.dataset.accounts:
        country = str(account["BillingCountryCode"])
        try:
            keys.add((country, normalise(country, account.get("Org_Number__c"))))
        except InvalidOrgNumber:
            continue
    return keys


def assert_registry_saw_only_our_gets(stack: Stack) -> None:
    requests = stack.registry.requests
    expected = valid_keys(stack)
    assert stack.registry.url.startswith("https://")
    assert requests, "the registry was never called"
    asked: set[tuple[str, str]] = set()
    for request in requests:
        assert request.method == "GET"
        assert request.query == {} and request.body == b""
        assert set(request.headers) <= ALLOWED_HEADERS, sorted(set(request.headers) - ALLOWED_HEADERS)
        assert request.headers["authorization"] == f"Token {stack.registry_token}"
        assert request.path.startswith(PROFF_PREFIX)
        country, _, org_number = request.path[len(PROFF_PREFIX) :].partition("/")
        assert country in ("NO", "SE", "DK") and (country, org_number) in expected, request.path
        asked.add((country, org_number))
    assert asked == expected, "some valid org number was never looked up"
    correlation_ids = [request.headers["correlation-id"] for request in requests]
    assert len(set(correlation_ids)) == len(correlation_ids), "a Correlation-ID was reused"


def assert_run_json(view: dict[str, Any], status: str = "partially_failed") -> None:
    assert set(view) >= RUN_KEYS | COUNT_KEYS, sorted(RUN_KEYS | COUNT_KEYS - set(view))
    assert view["connection"] == CONNECTION and view["kind"] == "manual" and view["status"] == status
    assert view["finished_at"] and view["duration_s"] >= 0
    assert (
        view["planned"] == view["invalid"] + view["unchanged"] + view["updated"] + view["failed"] == ACCOUNTS
    )


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)  # SQLite: the cluster and demo tests
def test_cli_flow_leaks_no_secret_and_registry_sees_only_gets(
    world: ClusterEnv, stack: Stack, tmp_path: Path
) -> None:
    cli = Cli(world, tmp_path)
    (tmp_path / "privacy.toml").write_text(
        to_toml(stack.spec_data(CONNECTION, "proff", requests_per_second=2000, burst=200)), encoding="utf-8"
    )
    debug = ("--log-level", "DEBUG", "--log-format", "json")

    assert cli(*debug, "connection", "apply", "privacy.toml").returncode == 0, cli.outputs[-1]
    for name, value in (
        ("salesforce_client_secret", stack.client_secret),
        ("registry_token", stack.registry_token),
    ):
        done = cli(*debug, "secret", "set", CONNECTION, name, stdin=value + "\n")
        assert done.returncode == 0, done.stderr
        assert f"secret {name} set for {CONNECTION}: ••••{value[-4:]}" in done.stdout
    again = cli(*debug, "connection", "apply", "privacy.toml")  # now with the credential: describe runs
    assert again.returncode == 0 and "describe check skipped" not in again.stderr, again.stderr

    with celery_cluster(world, tmp_path / "worker", 1) as cluster:
        run = cli(*debug, "run", CONNECTION, "--wait", "--json", timeout=120)
        worker_output = cluster.output()

    assert run.returncode == 1, run.stdout + run.stderr
    view = json.loads(run.stdout)
    assert_run_json(view)
    truth = stack.truth(stack.spec(CONNECTION))
    assert (view["invalid"], view["failed"], view["updated"]) == (truth.invalid, truth.failed, truth.updated)

    listed = cli(*debug, "runs", "list", "--json")
    assert listed.returncode == 0
    assert [item["id"] for item in json.loads(listed.stdout)] == [view["id"]]
    shown = cli(*debug, "runs", "show", str(view["id"]), "--json")
    assert shown.returncode == 1
    assert_run_json(json.loads(shown.stdout))
    failures = cli(*debug, "runs", "failures", str(view["id"]), "--json", "--limit", "1000")
    assert failures.returncode == 0
    codes = {row["error_code"] for row in json.loads(failures.stdout) if not row["notice"]}
    assert codes == {"ORGNR_INVALID", "FIELD_CUSTOM_VALIDATION_EXCEPTION"}

    assert_registry_saw_only_our_gets(stack)

    tokens = issued_access_tokens(stack)
    assert tokens and stack.salesforce.tokens_issued >= len(tokens)
    secrets = secret_forms([stack.registry_token, stack.client_secret, world.secret_key, *tokens])
    everything = {
        "cli": "\n".join(cli.outputs),
        "worker": worker_output,
        "ledger": ledger_text(world.database_url),
    }
    assert '"level": "DEBUG"' in everything["cli"] + everything["worker"], "no DEBUG output was captured"
    assert "registry GET /api/companies/register/" in everything["worker"]
    leaks = {
        (where, secret[:6] + "…")
        for where, text in everything.items()
        for secret in secrets
        if secret in text
    }
    assert not leaks
    # Proff's sole-proprietorship listings name a person (personRoles, contactPerson, birth date): never kept.
    people = person_values(stack.dataset)
    assert people and not {where for where, text in everything.items() if found_in(text, people)}


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_connection_file_with_plain_http_registry_is_refused(
    world: ClusterEnv, stack: Stack, tmp_path: Path
) -> None:
    cli = Cli(world, tmp_path)
    data = stack.spec_data(CONNECTION, "proff")
    data["registry"]["base_url"] = data["registry"]["base_url"].replace("https://", "http://")
    (tmp_path / "plain.toml").write_text(to_toml(data), encoding="utf-8")

    done = cli("connection", "apply", "plain.toml")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "https://" in done.stderr
    assert cli("connection", "list", "--json").stdout.strip() == "[]"
