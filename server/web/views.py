"""The pages: the queue, one example, its edit form. Each asks for the reviewer's name once if it has none."""
from __future__ import annotations

import datagen
from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.web import render as show
from server.web.context import filters_from, render, reviewer, workspace

router = APIRouter()
PAGE_SIZE = 50
NEIGHBOURS = 5
REASONS = ["factually wrong", "breaks a rule", "near-duplicate", "unrealistic task", "poor code", "wrong category",
           "unsafe or leaks secrets"]


def _name_first(request: Request) -> Response | None:
    if reviewer(request) is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return render(request, "name.html", next=target)
    return None


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise HTTPException(400, f"{name} must be a whole number")
    return int(value)


@router.get("/")
def queue(request: Request) -> Response:
    if (prompt := _name_first(request)) is not None:
        return prompt
    ws = workspace(request)
    filters = filters_from(request.query_params)
    try:
        page = datagen.queue_page(ws, filters, after=_int_param(request, "after"),
                                  before=_int_param(request, "before"), limit=PAGE_SIZE)
    except datagen.DatagenError as exc:
        raise HTTPException(400, str(exc)) from None
    versions = {item.id: datagen.example_version(ws, item.id) for item in page.items}
    return render(request, "queue.html", page=page, versions=versions, filters=filters,
                  coverage=datagen.coverage(ws).categories, generators=datagen.example_generators(ws),
                  rules=[r.name for r in ws.config.rules], reasons=REASONS,
                  done=_int_param(request, "done"), conflicts=_int_param(request, "conflicts"))


def _stored(ws, example_id: str) -> datagen.StoredExample:
    try:
        return datagen.get_example(ws, example_id)
    except datagen.ExampleNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/examples/{example_id}")
def example(request: Request, example_id: str) -> Response:
    if (prompt := _name_first(request)) is not None:
        return prompt
    ws = workspace(request)
    stored = _stored(ws, example_id)
    filters = filters_from(request.query_params)
    chunks = {c.id: c for c in datagen.list_knowledge(ws)} if stored.example.source_refs else {}
    rules = datagen.check_rules(ws.config.rules, stored.example.messages, stored.example.category)
    return render(
        request, "example.html", stored=stored, filters=filters, turns=show.conversation(stored.example),
        tools_html=show.tools_json(stored.example), rules=rules,
        cited=[(ref, chunks.get(ref)) for ref in stored.example.source_refs],
        neighbours=datagen.nearest_examples(ws, example_id, NEIGHBOURS),
        revisions=datagen.example_revisions(ws, example_id), version=datagen.example_version(ws, example_id),
        next_id=datagen.adjacent_example(ws, filters, example_id),
        prev_id=datagen.adjacent_example(ws, filters, example_id, forward=False), reasons=REASONS)


@router.get("/examples/{example_id}/edit")
def edit_form(request: Request, example_id: str) -> Response:
    if (prompt := _name_first(request)) is not None:
        return prompt
    ws = workspace(request)
    stored = _stored(ws, example_id)
    return edit_page(request, stored, version=datagen.example_version(ws, example_id))


def edit_page(request: Request, stored: datagen.StoredExample, *, version: int, reasons: list[str] = (),
              submitted: dict[str, str] | None = None, status_code: int = 200) -> Response:
    """The edit form; after a refused save it shows what was submitted, with every reason."""
    ws = workspace(request)
    return render(request, "edit.html", status_code, stored=stored, turns=show.conversation(stored.example),
                  categories=[c.name for c in ws.config.categories], version=version, reasons=list(reasons),
                  submitted=submitted or {})
