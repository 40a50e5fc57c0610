"""What every page needs: the queue filters in the address, the reviewer's name, CSRF checks, rendering."""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote, urlencode

import datagen
from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from server.web.security import CSRF_FIELD, csrf_field, csrf_ok

REVIEWER_COOKIE = "engrain_reviewer"
STATUSES = ("pending", "approved", "rejected")
MAX_NAME = 60
MAX_NOTES = 1000


def filters_from(params: Mapping[str, str]) -> datagen.QueueFilter:
    status = params.get("status") or "pending"
    return datagen.QueueFilter(
        category=params.get("category") or None,
        status=None if status == "all" else (status if status in STATUSES else "pending"),
        generator=params.get("generator") or None,
        text=(params.get("q") or "").strip()[:200] or None,
        rule=params.get("rule") or None,
    )


def filter_query(filters: datagen.QueueFilter) -> str:
    pairs = {"status": filters.status or "all", "category": filters.category, "generator": filters.generator,
             "q": filters.text, "rule": filters.rule}
    return urlencode({k: v for k, v in pairs.items() if v})


def filters_from_back(back: str) -> datagen.QueueFilter:
    """The filters a form carried back (its page's query string)."""
    return filters_from(dict(parse_qsl(back or "")))


def clean_name(raw: str) -> str | None:
    name = " ".join((raw or "").split())
    if not name or len(name) > MAX_NAME or any(unicodedata.category(ch).startswith("C") for ch in name):
        return None
    return name


def reviewer(request: Request) -> str | None:
    return clean_name(unquote(request.cookies.get(REVIEWER_COOKIE, "")))


def reviewer_cookie(name: str) -> str:
    return quote(name, safe="")


def workspace(request: Request) -> datagen.Workspace:
    return request.app.state.workspace


async def checked_form(request: Request):
    """The POSTed form, after its CSRF field matched this browser's cookie (403 otherwise)."""
    form = await request.form()
    if not csrf_ok(request, request.app.state.secret, form.get(CSRF_FIELD)):
        raise HTTPException(403, "This form's security token is missing or out of date (CSRF check). Reload the "
                                 "page and try again.")
    return form


def require_reviewer(request: Request) -> str:
    name = reviewer(request)
    if name is None:
        raise HTTPException(400, "Tell the page your name first (reload it): every decision records who made it.")
    return name


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    state = request.app.state
    context.setdefault("filters", filters_from(request.query_params))
    context.setdefault("back", filter_query(context["filters"]))
    return state.templates.TemplateResponse(request, template, {
        "reviewer": reviewer(request), "csrf": csrf_field(state.secret, request.state.csrf_cookie),
        "statuses": STATUSES, **context}, status_code=status_code)
