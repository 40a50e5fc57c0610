"""ASGI middleware that counts every response by route and status, whatever answered it.

The handlers count the requests they route; this also sees what never reaches them (a 400 from validation,
401/413 from the guard, 404 for an unknown path) and the client that hung up before the response ended,
counted as 499 (nginx's code for it), whether or not a status had already gone out.
"""
from __future__ import annotations

from typing import Any

_ROUTES = {"/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/route", "/v1/models",
           "/v1/feedback", "/health", "/metrics"}


class CountStatuses:
    def __init__(self, app: Any, counter: Any) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, done = "499", False

        async def watch(message: dict) -> None:
            nonlocal status, done
            if message["type"] == "http.response.start":
                status = str(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                done = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            status, done = "500", True
            raise
        finally:
            path = scope["path"] if scope["path"] in _ROUTES else "other"
            self.counter.labels(path, status if done else "499").inc()
