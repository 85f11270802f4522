"""What both feeds share: RFC 6902 patches reduced to their paths, org numbers and JSON bodies read fail-closed."""

from __future__ import annotations

import json
from typing import TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.company import CompanyKey
from worker.errors import FeedError, FeedMalformed, InvalidOrgNumber
from worker.orgnr import normalise
from worker.registry.lookup import describe_validation_error

M = TypeVar("M", bound=BaseModel)


class PatchOp(BaseModel):
    """One RFC 6902 operation; only where it points matters here (its value is never read)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    op: str
    path: str
    source: str | None = Field(default=None, alias="from")


def patch_paths(ops: list[PatchOp] | None) -> tuple[str, ...] | None:
    """The distinct paths a patch touches, in order; None when it tells nothing about which fields changed.

    An absent or empty patch tells nothing (None: every field may have changed), and so does an op on the whole
    document (path ``""``). ``move`` also changes its ``from`` path.
    """
    if not ops:
        return None
    paths: list[str] = []
    for op in ops:
        touched = (op.path, op.source) if op.op == "move" and op.source is not None else (op.path,)
        if "" in touched:
            return None
        paths.extend(touched)
    return tuple(dict.fromkeys(paths))


def pointer_parts(path: str) -> list[str]:
    """The reference tokens of a JSON pointer (RFC 6901): ``/a~1b/0`` -> ``["a/b", "0"]``."""
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def feed_key(country: str, raw: str, feed: str) -> CompanyKey:
    """The normalised key of one feed item; a number that fails its country's check is a malformed feed.

    Raises:
        FeedMalformed: the number is not a valid org number for ``country`` (the number is not in the message).
    """
    try:
        return CompanyKey(country, normalise(country, raw))
    except InvalidOrgNumber:
        raise FeedMalformed(f"{feed} feed item has an invalid {country} organisation number") from None


def feed_json(response: httpx.Response, feed: str) -> object:
    """The parsed body of a 200 answer.

    Raises:
        FeedError: the feed answered another status.
        FeedMalformed: the body is not JSON.
    """
    if response.status_code != 200:
        raise FeedError(f"{feed} feed answered HTTP {response.status_code}")
    try:
        return json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FeedMalformed(f"{feed} feed answer is not JSON") from None


def validated(model: type[M], payload: object, feed: str) -> M:
    """``payload`` validated as ``model``; the first problem (location and kind, never a value) in one line.

    Raises:
        FeedMalformed: the payload does not have the model's shape.
    """
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise FeedMalformed(f"{feed} feed: {describe_validation_error(exc)}") from None
