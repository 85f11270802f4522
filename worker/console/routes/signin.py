"""Sign in with an API key (posted once; the browser keeps only a session cookie) and sign out."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from worker.api import access_watch
from worker.api.keys import authenticate
from worker.api.problems import ApiError
from worker.console.auth import (
    LOGIN_COOKIE,
    PREFIX,
    Acting,
    Form,
    clear_session_cookie,
    first,
    login_token,
    same_token,
    sessions,
    set_login_cookie,
    set_session_cookie,
    visitor,
)
from worker.console.render import page
from worker.ledger.db import session_scope

log = logging.getLogger(__name__)
router = APIRouter()


def _form(request: Request, message: str | None = None, status: int = 200) -> Response:
    token = login_token(request)
    response = page(request, "signin.html", status, login_csrf=token, message=message)
    set_login_cookie(request, response, token)
    return response


@router.get("/console/login")
def sign_in_form(request: Request) -> Response:
    try:
        visitor(request)
    except ApiError:
        return _form(request, "You are signed out." if request.query_params.get("out") else None)
    return RedirectResponse(f"{PREFIX}/connections", status_code=303)


@router.post("/console/login")
def sign_in(request: Request, fields: Form) -> Response:
    if not same_token(first(fields, "csrf"), request.cookies.get(LOGIN_COOKIE, "")):
        return _form(request, "The sign-in form expired; please try again.", 403)
    try:
        access_watch.refuse_blocked(request)
        with session_scope() as session:
            who = authenticate(session, first(fields, "api_key").strip())
        if who is None:
            refusal = ApiError(401, "That API key is not valid (unknown or revoked).")
            raise access_watch.failed_authentication(request, refusal)
    except ApiError as refused:
        return _form(request, refused.message, refused.status)
    token, _ = sessions(request).create(who.key_id)
    log.info("console sign-in by %s", who.actor)
    response = RedirectResponse(f"{PREFIX}/connections", status_code=303)
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post("/console/logout")
def sign_out(request: Request, who: Acting) -> Response:
    sessions(request).delete(who.token)
    log.info("console sign-out by %s", who.who.actor)
    response = RedirectResponse(f"{PREFIX}/login?out=1", status_code=303)
    clear_session_cookie(request, response)
    return response
