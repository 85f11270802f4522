"""Rendering console pages: the Jinja2 environment (autoescaped), its filters, and the page response.

Times are rendered in UTC inside ``<time datetime=…>``; ``static/console.js`` shows them in the viewer's zone
and keeps UTC in the title (on hover).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from worker.ledger.models import utcnow

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _moment(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def when(value: dt.datetime | str | None, style: str = "datetime") -> Markup:
    """A ``<time>`` element in UTC; the browser shows it in the viewer's zone (``style``: datetime or time)."""
    moment = _moment(value)
    if moment is None:
        return Markup("—")
    utc = moment.astimezone(dt.UTC)
    text = utc.strftime("%H:%M" if style == "time" else "%Y-%m-%d %H:%M")
    template = Markup('<time datetime="{}" data-local="{}" title="{} UTC">{} UTC</time>')
    return template.format(utc.isoformat(), style, text, text)


def relative(value: dt.datetime | str | None, now: dt.datetime | None = None) -> str:
    """``in 41 min`` or ``12 min ago`` (minutes under two hours, then hours, then days)."""
    moment = _moment(value)
    if moment is None:
        return ""
    seconds = (moment - (now or utcnow())).total_seconds()
    span = _span(abs(seconds))
    return f"in {span}" if seconds >= 0 else f"{span} ago"


def _span(seconds: float) -> str:
    if seconds < 120 * 60:
        return f"{max(0, round(seconds / 60))} min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


def duration(seconds: float | None) -> str:
    """``41 s``, ``3 min 20 s`` or ``2 h 5 min``; a dash when the run has not started."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def brief(values: dict[str, Any] | None, most: int = 4) -> str:
    """An audit event's before/after as ``key=value`` pairs, the first ``most`` of them (values cut at 40)."""
    if not values:
        return ""
    pairs = [f"{key}={json.dumps(value, ensure_ascii=False)[:40]}" for key, value in values.items()]
    more = f" … {len(pairs) - most} more" if len(pairs) > most else ""
    return ", ".join(pairs[:most]) + more


def words(value: str | None) -> str:
    """An enum value as words: ``partially_failed`` → ``partially failed``."""
    return (value or "").replace("_", " ")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, relative=relative, duration=duration, words=words, brief=brief)
    return env


ENV = _environment()


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` rendered with ``context`` (plus the request and the signed-in visitor, if any)."""
    visitor = getattr(request.state, "visitor", None)
    html = ENV.get_template(template).render(request=request, visitor=visitor, now=utcnow(), **context)
    return HTMLResponse(html, status_code=status)
