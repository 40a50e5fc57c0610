"""State-changing requests: name, approve/reject, edit, bulk. All POST, all CSRF-checked, all review events."""
from __future__ import annotations

import datagen
from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from server.web.context import (MAX_NOTES, REVIEWER_COOKIE, checked_form, clean_name, filter_query,
                                filters_from_back, render, require_reviewer, reviewer_cookie, workspace)
from server.web.views import edit_page

router = APIRouter()
YEAR_S = 365 * 24 * 3600


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _local_path(target: str) -> str:
    """Only a path on this site may follow the name form (no //host or scheme: no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _version(raw) -> int:
    if not str(raw or "").isdigit():
        raise HTTPException(400, "The form has no valid version field; reload the page.")
    return int(raw)


@router.post("/reviewer")
async def set_reviewer(request: Request) -> Response:
    form = await checked_form(request)
    name = clean_name(form.get("name", ""))
    target = _local_path(str(form.get("next", "/")))
    if name is None:
        return render(request, "name.html", 400, next=target,
                      error="Give a name of 1 to 60 printable characters.")
    response = _see_other(target)
    response.set_cookie(REVIEWER_COOKIE, reviewer_cookie(name), max_age=YEAR_S, httponly=True, samesite="strict")
    return response


def _conflict(request: Request, exc: datagen.ReviewConflict, example_id: str, back: str) -> Response:
    return render(request, "conflict.html", 409, message=str(exc), example_id=example_id,
                  filters=filters_from_back(back), back=back)


@router.post("/examples/{example_id}/decide")
async def decide(request: Request, example_id: str) -> Response:
    form = await checked_form(request)
    name = require_reviewer(request)
    ws = workspace(request)
    back = str(form.get("back", ""))
    verdict = form.get("verdict")
    try:
        datagen.decide(ws, example_id, verdict, reviewer=name, notes=str(form.get("notes", "")).strip()[:MAX_NOTES],
                       expected_version=_version(form.get("version")))
    except datagen.ReviewConflict as exc:
        return _conflict(request, exc, example_id, back)
    except datagen.ExampleNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except datagen.DatagenError as exc:
        raise HTTPException(400, str(exc)) from None
    following = datagen.adjacent_example(ws, filters_from_back(back), example_id)
    return _see_other(f"/examples/{following}?{back}" if following else f"/?{back}")


def _edited_record(stored: datagen.StoredExample, form) -> dict:
    """The stored example with the form's texts in place. Browsers send textareas with CRLF line ends."""
    record = stored.example.wire()
    for i, message in enumerate(record["messages"]):
        if f"content_{i}" in form:
            text = str(form[f"content_{i}"]).replace("\r\n", "\n")
            message["content"] = text if text or message["role"] != "assistant" else None
            if message["content"] is None:
                message.pop("content")
        for j, call in enumerate(message.get("tool_calls", [])):
            if f"args_{i}_{j}" in form:
                call["function"]["arguments"] = str(form[f"args_{i}_{j}"]).replace("\r\n", "\n")
    if form.get("category"):
        record["category"] = str(form["category"])
    return record


@router.post("/examples/{example_id}/edit")
async def edit(request: Request, example_id: str) -> Response:
    form = await checked_form(request)
    name = require_reviewer(request)
    ws = workspace(request)
    back = str(form.get("back", ""))
    try:
        stored = datagen.get_example(ws, example_id)
        version = _version(form.get("version"))
        result = datagen.edit_example(ws, example_id, _edited_record(stored, form), reviewer=name,
                                      notes=str(form.get("notes", "")).strip()[:MAX_NOTES], expected_version=version)
    except datagen.ReviewConflict as exc:
        return _conflict(request, exc, example_id, back)
    except datagen.ExampleNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    if not result.saved:
        submitted = {k: str(v).replace("\r\n", "\n") for k, v in form.items()}
        return edit_page(request, stored, version=version, reasons=result.reasons, submitted=submitted,
                         status_code=422)
    return _see_other(f"/examples/{example_id}?{back}")


@router.post("/bulk")
async def bulk(request: Request) -> Response:
    form = await checked_form(request)
    name = require_reviewer(request)
    ws = workspace(request)
    verdict = form.get("verdict")
    if verdict not in ("approve", "reject"):
        raise HTTPException(400, "Choose approve or reject for the selected examples.")
    notes = str(form.get("notes", "")).strip()[:MAX_NOTES]
    done = conflicts = 0
    for example_id in form.getlist("ids"):
        try:
            datagen.decide(ws, example_id, verdict, reviewer=name, notes=notes,
                           expected_version=_version(form.get(f"v_{example_id}")))
            done += 1
        except datagen.ReviewConflict:
            conflicts += 1
        except datagen.ExampleNotFound:
            conflicts += 1
    back = str(form.get("back", "")) or filter_query(filters_from_back(""))
    return _see_other(f"/?{back}&done={done}&conflicts={conflicts}")
