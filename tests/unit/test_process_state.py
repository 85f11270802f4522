"""Every module-level cache is registered with worker.infra.process_state, and one call forgets them all."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from worker.infra import process_state

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("worker", "tasks", "config")

#: Module-level state that is deliberately not reset, and why.
NOT_RESET = {
    # Secrets registered for log redaction: forgetting them would let a secret reach a log line.
    "config.logging._registry",
}

_EMPTY_CALLS = {"dict", "list", "set", "OrderedDict", "defaultdict", "deque"}
_CACHE_DECORATORS = {"lru_cache", "cache"}


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        return (
            func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        )
    return None


def _is_cache_value(value: ast.expr) -> bool:
    """An empty container, or an instance of a class named like a cache or store (filled at run time)."""
    if isinstance(value, ast.Dict | ast.List | ast.Set) and not getattr(
        value, "keys", getattr(value, "elts", [])
    ):
        return True
    name = _call_name(value)
    if name is None or (
        isinstance(value, ast.Call) and (value.args or value.keywords) and name in _EMPTY_CALLS
    ):
        return False
    return name in _EMPTY_CALLS or name.endswith(("Cache", "Store", "Registry"))


def _decorator_name(node: ast.expr) -> str | None:
    target = node.func if isinstance(node, ast.Call) else node
    return (
        target.id
        if isinstance(target, ast.Name)
        else target.attr
        if isinstance(target, ast.Attribute)
        else None
    )


def caches_in(tree: ast.Module) -> list[str]:
    """The names of module-level caches in a module's syntax tree."""
    found: list[str] = []
    for node in tree.body:
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and node.value is not None
            and _is_cache_value(node.value)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [target.id for target in targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.FunctionDef) and any(
            _decorator_name(d) in _CACHE_DECORATORS for d in node.decorator_list
        ):
            found.append(node.name)
    return found


def module_caches() -> dict[str, str]:
    """``module.name`` → module, for every module-level cache of worker/, tasks/ and config/."""
    result: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for name in caches_in(ast.parse(path.read_text(encoding="utf-8"))):
                result[f"{module}.{name}"] = module
    return result


def test_every_module_level_cache_is_registered_for_reset() -> None:
    caches = module_caches()
    for module in sorted(set(caches.values())):
        importlib.import_module(module)  # registration happens at import
    registered = {cache.qualname for cache in process_state.registered()}
    missing = sorted(set(caches) - registered - NOT_RESET - {"worker.infra.process_state._REGISTRY"})
    assert missing == [], f"register these with worker.infra.process_state.register: {missing}"
    # The finder itself works: it sees the caches the review listed.
    assert {"worker.ledger.db._ENGINES", "config.settings.get_settings", "worker.crm.auth.TOKENS"} <= set(
        caches
    )


def test_the_finder_flags_a_new_unregistered_cache() -> None:
    tree = ast.parse(
        "import functools\n"
        "_SEEN: dict[str, int] = {}\n"
        "_POOL = OrderedDict()\n"
        "TABLE = {'a': 1}\n"
        "ANSWERS = ResultCache()\n"
        "@functools.lru_cache(maxsize=1)\n"
        "def load() -> int:\n"
        "    return 1\n"
    )
    assert caches_in(tree) == ["_SEEN", "_POOL", "ANSWERS", "load"]


def test_reset_process_state_forgets_settings_engines_tokens_and_local_stores(tmp_path: Path) -> None:
    from config.settings import get_settings
    from worker.budget.store import LOCAL_STORE
    from worker.crm.auth import TOKENS
    from worker.crm.describe_cache import DESCRIBES
    from worker.ledger import db

    settings = get_settings()
    db.engine_for(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    LOCAL_STORE.add_calls("tag", "2026-01-01", 3)
    TOKENS._tokens[("k",)] = (0.0, "t", "u")
    DESCRIBES.put(("i", "t", "Account"), {})

    process_state.reset_process_state()

    assert get_settings() is not settings
    assert db._ENGINES == {}
    assert LOCAL_STORE.own_used("tag", "2026-01-01") == 0
    assert TOKENS._tokens == {}
    assert DESCRIBES.get(("i", "t", "Account")) is None
