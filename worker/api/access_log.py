"""uvicorn's access log without query strings: a key sent by mistake as ``?access_token=…`` must not land in
any log line, so each access record keeps the path only."""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


class PathOnly(logging.Filter):
    """Cut the query string off the path argument of uvicorn's access records (every other field is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_path_only(arg) for arg in record.args)
        return True


def _path_only(arg: object) -> object:
    return arg.split("?", 1)[0] if isinstance(arg, str) and arg.startswith("/") else arg


def install() -> None:
    """Put :class:`PathOnly` on uvicorn's access logger (once, however many apps are created)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, PathOnly) for f in logger.filters):
        logger.addFilter(PathOnly())
