"""One pooled httpx client per event loop, shared by the providers that forward JSON themselves (openai,
anthropic): a connection pool belongs to one event loop; eval runs a loop per call, the server one for its
lifetime."""
from __future__ import annotations

import asyncio
import weakref

import httpx

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = httpx.AsyncClient(limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
    return _clients[loop]
