"""Worker processes leave what lives as long as they do out of garbage collections (worker.infra.gc_freeze)."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.signals import task_postrun, worker_process_init

import tasks.app  # noqa: F401  (connects the worker's signal handlers)
from worker.infra import gc_freeze


@pytest.fixture
def unfrozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts in a process that never froze, and leaves none frozen."""
    gc.unfreeze()
    monkeypatch.setattr(gc_freeze._LAST, "modules", None)
    yield
    gc.unfreeze()


def _import_new_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    (tmp_path / f"{name}.py").write_text("VALUE = {'a': [1, 2, 3]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    __import__(name)


@pytest.mark.usefixtures("unfrozen")
def test_a_process_that_never_froze_freezes_nothing_after_a_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task run outside a worker (eagerly, in a test or the CLI) must not make that process's objects permanent."""
    _import_new_module(tmp_path, monkeypatch, "regsync_gc_probe_a")
    assert gc_freeze.freeze_if_modules_grew() is False
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("unfrozen")
def test_a_worker_process_freezes_as_it_starts_and_again_after_a_task_that_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.ledger.db.reset_engines", lambda: None)
    worker_process_init.send(sender=None)  # what Celery sends in a pool child as it starts
    at_start = gc.get_freeze_count()
    assert at_start > 10_000  # the imported modules' objects, left out of collections

    task_postrun.send(sender=None)  # a task that imported nothing: nothing more to freeze
    assert gc.get_freeze_count() == at_start

    _import_new_module(tmp_path, monkeypatch, "regsync_gc_probe_b")
    task_postrun.send(sender=None)
    assert gc.get_freeze_count() > at_start
    assert gc_freeze.freeze_if_modules_grew() is False  # frozen once per new import, not after every task


@pytest.mark.usefixtures("unfrozen")
def test_garbage_is_collected_before_it_could_be_frozen() -> None:
    """A freeze keeps only what survived a collection: a cycle already unreachable is freed, not made permanent."""

    class Node:
        other: object = None

    first, second = Node(), Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    gc.disable()  # no collection between here and the freeze but the freeze's own
    try:
        del first, second
        assert alive() is not None  # a cycle: reference counting alone does not free it
        gc_freeze.freeze_long_lived()
    finally:
        gc.enable()
    assert alive() is None
