"""The review web app over one workspace: FastAPI, Jinja templates (autoescaped), one vendored script."""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

import datagen
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from server.web import actions, dashboard, views
from server.web.context import render
from server.web.render import stylesheet
from server.web.security import CSRF_COOKIE, HEADERS, TOKEN_COOKIE, host_ok, new_csrf_cookie, token_ok

HERE = Path(__file__).parent
WRONG_HOST = ("This review page answers only to http://127.0.0.1 or http://localhost; to serve it to other machines, "
              "start it with --host and --token.")
NEEDS_TOKEN = ("This review page needs its token: open the link printed when it started (it ends in ?token=...), "
               "or send the header Authorization: Bearer TOKEN.")


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    return Jinja2Templates(env=env)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


async def guard(request: Request, call_next) -> Response:
    """Host and token gates, the CSRF cookie, and the security headers on every response."""
    token = request.app.state.token
    if not host_ok(request, token):
        response: Response = PlainTextResponse(WRONG_HOST, status_code=403)
    elif request.url.path != "/healthz" and not token_ok(request, token):
        response = PlainTextResponse(NEEDS_TOKEN, status_code=401)
    elif token and request.method == "GET" and "token" in request.query_params:
        # Trade the printed link's token for a cookie, and keep it out of the address bar and history.
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    else:
        fresh = None if request.cookies.get(CSRF_COOKIE) else new_csrf_cookie()
        request.state.csrf_cookie = fresh or request.cookies[CSRF_COOKIE]
        response = await call_next(request)
        if fresh:
            response.set_cookie(CSRF_COOKIE, fresh, httponly=True, samesite="strict")
    response.headers.update(HEADERS)
    return response


async def http_error(request: Request, exc: HTTPException) -> Response:
    if not hasattr(request.state, "csrf_cookie"):
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
    return render(request, "error.html", exc.status_code, message=str(exc.detail), code=exc.status_code)


def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


def pygments_css() -> Response:
    return Response(stylesheet(), media_type="text/css")


def create_app(ws: datagen.Workspace, *, token: str | None = None) -> FastAPI:
    app = FastAPI(title="engrain review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace = ws
    app.state.token = token or None
    app.state.secret = secrets.token_bytes(32)  # CSRF fields die with the process; pages reload to get new ones
    app.state.templates = _templates()
    app.middleware("http")(guard)
    app.add_exception_handler(HTTPException, http_error)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/static/pygments.css", pygments_css, methods=["GET"])
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (views, actions, dashboard):
        app.include_router(module.router)
    return app
