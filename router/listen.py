"""How the router listens (`serve`: one process or several workers): uvicorn with a bound on each request's head
and on concurrent connections.

uvicorn's httptools protocol buffers a request line and headers of any size before the app (and so the API-key
check) sees them: eight unauthenticated 100 MB headers took a router from 155 to 833 MiB. Here the head is
counted as it arrives and a request whose head passes the limit is answered 431 and its connection closed.
The limit travels in uvicorn's own `h11_max_incomplete_event_size` setting (the same bound for its h11
protocol), so worker processes started by `--workers` get it too. The header count is checked by the Guard.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router import fleet
from router.app import create_app
from router.cascade import ReplyCheck
from router.config import RouterConfig
from router.decisions import default_path
from router.errors import error_body
from router.guard import api_of

DEFAULT_HEAD = 64 * 1024
_LINGER_S = 1.0


class LimitedHttpTools(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head = self.config.h11_max_incomplete_event_size or DEFAULT_HEAD
        self.in_head = False
        self.head_bytes = 0
        self.refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return                    # the rest of a refused head: read and dropped until the connection closes
        super().data_received(data)
        if not self.in_head or self.transport.is_closing():
            return
        # everything that arrived while the head is unfinished is head (give or take the end of a pipelined body)
        self.head_bytes += len(data)
        if self.head_bytes > self.max_head:
            self._refuse()

    def _refuse(self) -> None:
        path = self.url.decode("latin-1").split("?")[0] if self.url else "/"
        body = json.dumps(error_body(api_of(path), 431, f"request line and headers are larger than "
                                                        f"{self.max_head // 1024} KB")).encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.in_head, self.refused = False, True
        # a lingering close: stop sending, keep reading (and dropping) a moment, so the client reads the 431
        # instead of a reset for the bytes it was still sending
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)


def uvicorn_options(cfg: RouterConfig) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run / uvicorn.Config that apply the router's connection limits."""
    return {"http": LimitedHttpTools, "h11_max_incomplete_event_size": cfg.max_header_kb * 1024,
            "limit_concurrency": cfg.max_connections}


def serve(cfg: RouterConfig, *, host: str, port: int, workers: int = 1, api_key: str | None = None,
          reply_check: ReplyCheck | None = None) -> None:
    """Serve the router until interrupted (`engrain serve`). Several workers (the cascade runs in one) share
    cooldowns through the router's SQLite file (the decision log's, else one in a scratch folder) and answer
    /metrics for the whole server (router/fleet.py)."""
    options = {"host": host, "port": port, "log_level": "warning", **uvicorn_options(cfg)}
    if workers == 1:
        return uvicorn.run(create_app(cfg, api_key=api_key, reply_check=reply_check), **options)
    with tempfile.TemporaryDirectory(prefix="engrain-router-") as scratch:
        shared = cfg.state_db or default_path(Path(scratch))
        fleet.prepare_metrics_dir(shared.parent / f"router-metrics-{port}")
        # the workers are new processes: config and key reach them through the environment (app_from_env)
        os.environ["ENGRAIN_ROUTER_CONFIG_JSON"] = cfg.model_copy(
            update={"cooldown_db": cfg.cooldown_db or shared}).model_dump_json()
        if api_key:
            os.environ["ENGRAIN_API_KEY"] = api_key
        uvicorn.run("router.listen:app_from_env", factory=True, workers=workers, **options)


def app_from_env() -> FastAPI:
    """uvicorn factory for each worker of `serve`: config and key come from the environment."""
    raw = os.environ.get("ENGRAIN_ROUTER_CONFIG_JSON")
    return create_app(json.loads(raw) if raw else None, api_key=os.environ.get("ENGRAIN_API_KEY") or None)
