"""The import contract: lower layers never import higher ones (issue 11, item 7).

Read from the source with ``ast`` (no new dependency, nothing imported), so it also sees imports inside functions
and under ``TYPE_CHECKING``. Three rules:

1. ``config/`` imports nothing of ours (its own docstring promises it).
2. The kernel (``worker/errors.py``, ``company.py``, ``orgnr.py``, ``roles.py``) and ``worker/ledger/`` import no
   feature package, except the pairs listed, with their reason, in ``ALLOWED``.
3. Nothing in ``worker/`` imports ``tasks``, ``worker.cli``, ``worker.api`` or ``worker.console``, except ``cli/``,
   ``api/`` and ``console/`` themselves (the console is an entry point built on the API's handlers, on purpose: it
   must act exactly as the API does) and the pairs in ``ALLOWED``.

A new exception is a new line in ``ALLOWED`` with its reason, in review; anything else fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The top-level packages that are ours (the wheel installs them); imports of anything else are ignored.
OURS = ("worker", "tasks", "config", "migrations")

KERNEL = ("worker.errors", "worker.company", "worker.orgnr", "worker.roles")

FEATURES = tuple(
    f"worker.{name}"
    for name in (
        "alerts",
        "api",
        "cli",
        "sync",
        "backfill",
        "budget",
        "scheduling",
        "connections",
        "sandbox",
        "registry",
        "crm",
    )
)

ENTRY_POINTS = ("tasks", "worker.cli", "worker.api", "worker.console")

#: (importing module, imported module or package) pairs the rules let through, each with its reason.
ALLOWED: Mapping[tuple[str, str], str] = {
    # Rule 2 (kernel and ledger → features)
    ("worker.ledger.writes", "worker.crm.values"): (
        "a leaf of pure value functions (imports nothing of ours): the ledger stores value hashes, and the hash "
        "is defined once, beside the CRM values it hashes (REVIEW §3 item 7 puts it in crm/)"
    ),
    ("worker.ledger.views", "worker.registry.outcomes"): (
        "the run view lists notice codes next to failures; registry/outcomes is an enum over kernel types "
        "(company) and registry/lookup's constant. Harmless today; move it to the kernel if it grows"
    ),
    # Rule 3 (worker → entry points)
    ("worker.schema", "worker.api.models"): (
        "the all-tables aggregator sits above every feature by design: it collects api_keys for Alembic "
        "(only migrations/env.py and the schema tests import it)"
    ),
}
# Named harmless in REVIEW §3 item 7 and allowed because the rules do not forbid them: ledger/migrate → migrations
# (runs Alembic); connections/spec → alerts/config, scheduling/spec (a connection file is composed of leaf
# pydantic models); connections/apply → scheduling/store, ledger/models (a use case inside a schema package).


@dataclass(frozen=True, slots=True)
class Rule:
    """Modules under ``importers`` (minus ``exempt``) must not import anything under ``forbidden``."""

    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()


RULES = (
    Rule("config imports nothing of ours", ("config",), tuple(p for p in OURS if p != "config")),
    Rule("the kernel and ledger/ import no feature package", (*KERNEL, "worker.ledger"), FEATURES),
    Rule(
        "nothing in worker/ imports tasks, worker.cli, worker.api or worker.console",
        ("worker",),
        ENTRY_POINTS,
        exempt=("worker.cli", "worker.api", "worker.console"),
    ),
)


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module of ours that ``source`` (the text of ``module``) imports, anywhere in the file.

    ``from a.b import c`` yields ``a.b.c``: ``c`` may be a module or a name in ``a.b``, and the rules match by
    prefix, so both fall under ``a.b``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.update(base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if _under(name, OURS)}


def source_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module → the modules of ours it imports, for every ``.py`` file of ``worker/``, ``tasks/`` and ``config/``."""
    graph: dict[str, set[str]] = {}
    for top in ("worker", "tasks", "config"):
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            module = ".".join(parts[:-1] if is_package else parts)
            graph[module] = imports_of(path.read_text(encoding="utf-8"), module, is_package=is_package)
    return graph


def violations(graph: Mapping[str, Iterable[str]], rules: Iterable[Rule] = RULES) -> list[str]:
    """Each import that breaks a rule, as ``rule: importer → imported``; empty when the contract holds."""
    out: list[str] = []
    for rule in rules:
        for importer in sorted(graph):
            if not _under(importer, rule.importers) or _under(importer, rule.exempt):
                continue
            for imported in sorted(graph[importer]):
                if not _under(imported, rule.forbidden):
                    continue
                if any(importer == a and _under(imported, (b,)) for a, b in ALLOWED):
                    continue
                out.append(f"{rule.name}: {importer} → {imported}")
    return out


def test_the_codebase_keeps_the_import_contract() -> None:
    graph = source_graph()
    assert len(graph) > 150 and "worker.sync.chunk" in graph  # the scan found the code
    assert violations(graph) == []


def test_every_allowed_exception_is_still_needed() -> None:
    graph = source_graph()
    stale = [
        pair
        for pair in ALLOWED
        if not any(_under(imported, (pair[1],)) for imported in graph.get(pair[0], ()))
    ]
    assert stale == []


def test_a_planted_upward_import_fails_the_contract() -> None:
    graph = source_graph()
    planted = {
        "worker.ledger.runs": "from worker.sync.chunk import sync_chunk\n",  # ledger → feature
        "worker.errors": "def late():\n    from worker.alerts import notify\n",  # kernel → feature, function-local
        "config.settings": "import worker.ledger.db\n",  # config → ours
        "worker.sync.plan": "from tasks.jobs import plan_run\n",  # worker → tasks
        "worker.alerts.notice_settings": "from worker.api.models import Role\n",  # domain → HTTP layer (the old one)
        "worker.ledger.chunks": "from ..cli import common\n",  # relative, two rules at once
    }
    config, kernel, entry = (rule.name for rule in RULES)
    for module, text in planted.items():
        graph[module] = graph.get(module, set()) | imports_of(text, module)

    assert violations(graph) == [
        f"{config}: config.settings → worker.ledger.db",
        f"{kernel}: worker.errors → worker.alerts.notify",
        f"{kernel}: worker.ledger.chunks → worker.cli.common",
        f"{kernel}: worker.ledger.runs → worker.sync.chunk.sync_chunk",
        f"{entry}: worker.alerts.notice_settings → worker.api.models.Role",
        f"{entry}: worker.ledger.chunks → worker.cli.common",
        f"{entry}: worker.sync.plan → tasks.jobs.plan_run",
    ]
