"""ASGI middleware at the door: header count, API key, body size limit, and x-engrain-* headers on every response.

Plain ASGI rather than Starlette's BaseHTTPMiddleware, which adds a task and a memory stream per request
(measurable in the router's overhead) and cannot refuse a chunked body that grows past the limit.
"""
from __future__ import annotations

import hmac
import json
from typing import Any

from router.errors import error_body

_DEFAULT_HEADERS = [(b"x-engrain-model", b"-"), (b"x-engrain-tier", b"-"), (b"x-engrain-score", b"-"),
                    (b"x-engrain-fallbacks", b"0"), (b"x-engrain-overhead-ms", b"0")]
_OPEN_PATHS = {"/health"}


def api_of(path: str) -> str:
    return "anthropic" if path.startswith("/v1/messages") else "openai"


class Guard:
    def __init__(self, app: Any, api_key: str | None, max_body: int, max_headers: int = 100) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body = max_body
        self.max_headers = max_headers

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in _DEFAULT_HEADERS if k not in present]
            await send(message)

        path = scope["path"]
        if len(scope.get("headers", [])) > self.max_headers:
            await self._reply(send_with_headers, path, 431, f"more than {self.max_headers} header fields")
            return
        if self.api_key and path not in _OPEN_PATHS and not self._authorised(scope):
            await self._reply(send_with_headers, path, 401, "missing or wrong API key (send it as "
                              "'Authorization: Bearer <key>' or 'x-api-key: <key>')")
            return
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._reply(send_with_headers, path, 413, self._too_large())
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            # read the body here so a chunked upload is refused as soon as it passes the limit
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body:
                    await self._reply(send_with_headers, path, 413, self._too_large())
                    return
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()           # later calls wait for the client's disconnect

            await self.app(scope, replay, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _too_large(self) -> str:
        return f"request body is larger than {self.max_body // (1024 * 1024)} MB"

    def _authorised(self, scope: dict) -> bool:
        headers = dict(scope.get("headers", []))
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth.lower().startswith(b"bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given, (self.api_key or "").encode())

    @staticmethod
    async def _reply(send: Any, path: str, status: int, message: str) -> None:
        data = json.dumps(error_body(api_of(path), status, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
