"""Helpers (not a test module) for the console tests: a signed-in browser-like client per key."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """A TestClient with its own cookie jar that signs in through the console's form, as a person would."""

    def __init__(self, app: FastAPI, base_url: str = "http://localhost") -> None:
        self.client = TestClient(
            app, base_url=base_url, follow_redirects=False, raise_server_exceptions=False
        )
        self.csrf = ""

    def sign_in(self, key: str) -> int:
        form = self.client.get("/console/login")
        token = CSRF.search(form.text)
        assert token, form.text
        answer = self.client.post("/console/login", data={"api_key": key, "csrf": token.group(1)})
        if answer.status_code == 303:
            page = self.client.get("/console/connections")
            found = CSRF.search(page.text)
            self.csrf = found.group(1) if found else ""
        return int(answer.status_code)

    def get(self, path: str) -> tuple[int, str]:
        answer = self.client.get(path)
        return answer.status_code, answer.text

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> tuple[int, str]:
        fields = dict(data or {})
        if csrf:
            fields["csrf"] = self.csrf
        answer = self.client.post(path, data=fields)
        return answer.status_code, answer.text


def console_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path template) of the console app served by ``app`` (HEAD aside)."""
    console: FastAPI = app.state.console
    return {
        (method, route.path or "")
        for route in iter_route_contexts(console.routes)
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }


#: Forms a page may carry for anyone signed in (signing out changes nothing of a tenant's).
ACTION_FORM = re.compile(r'<form method="post" action="(/console/(?!logout)[^"]+)"|formaction="([^"]+)"')
