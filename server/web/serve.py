"""`engrain review --web`: check who could reach the page, then serve it with uvicorn."""
from __future__ import annotations

import sys

import datagen
import uvicorn

from server.web.app import create_app
from server.web.security import check_exposure


def serve(ws: datagen.Workspace, *, host: str = "127.0.0.1", port: int = 8710, token: str | None = None) -> None:
    check_exposure(host, token)
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"review page for {ws.root}: {link}  (Ctrl-C stops it)", file=sys.stderr, flush=True)
    uvicorn.run(create_app(ws, token=token), host=host, port=port, log_level="warning")
