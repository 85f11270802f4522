"""Short garbage-collector pauses in worker processes: what lives as long as the process is left out of them.

CPython's full collection walks every container object of the process and holds up every thread of it meanwhile.
A worker holds about 130,000 such objects once its modules are imported (Celery, SQLAlchemy, pydantic, httpx...),
and more once its first tasks imported the rest (tasks import their adapters lazily); nearly all of them live as
long as the process. In the registry-pump benchmark (issue 13) a full collection in the pump's process took 67-86
ms, every 5-10 s, and each cost the registry 10-14 of the 196 requests of that second: grants are paced, and the
ones a held-up process misses are made up only within the token's burst.

:func:`freeze_long_lived` collects once and moves what survives into the permanent generation (:func:`gc.freeze`),
which collections skip; reference counting still frees its objects. The worker calls it as a process starts and
after any task that imported modules (:func:`freeze_if_modules_grew`), so once each kind of task has run in a
process, collections walk only what tasks create. Python's documentation suggests the same for pre-fork servers.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass


@dataclass(slots=True)
class _Frozen:
    modules: int | None = None  # len(sys.modules) at the last freeze; None: this process never froze


_LAST = _Frozen()


def freeze_long_lived() -> None:
    """Collect what is garbage now, then leave everything that survived out of later collections."""
    gc.collect()
    gc.freeze()
    _LAST.modules = len(sys.modules)


def freeze_if_modules_grew() -> bool:
    """After a task: freeze again if it imported modules since the last freeze (True), else do nothing.

    Only in a process that froze as it started (a worker): a task run eagerly elsewhere (a test) freezes nothing.
    """
    if _LAST.modules is None or len(sys.modules) <= _LAST.modules:
        return False
    freeze_long_lived()
    return True
