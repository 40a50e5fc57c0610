"""Run the router app under uvicorn in a thread on a free loopback port (what `engrain serve` runs)."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import uvicorn

from router.app import create_app
from router.listen import uvicorn_options
from router.scoring import Scorer

_scorer: Scorer | None = None


def shared_scorer() -> Scorer:
    """One static MiniLM + default head per test process."""
    global _scorer
    if _scorer is None:
        _scorer = Scorer()
    return _scorer


@contextmanager
def running_router(config: dict, *, api_key: str | None = None, wrap: Callable[[Any], Any] | None = None,
                   app_out: list | None = None) -> Iterator[str]:
    """`wrap`: an ASGI wrapper around the app (a test's recorder at the door); `app_out` receives the app."""
    app = create_app(config, api_key=api_key, scorer=shared_scorer())
    if app_out is not None:
        app_out.append(app)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(wrap(app) if wrap else app, log_level="warning", lifespan="on",
                                           **uvicorn_options(app.state.config)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("router did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
