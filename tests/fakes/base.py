"""The loopback HTTP server under every fake: a thread, port 0, faults, chunked streaming.

Built on the stdlib's ThreadingHTTPServer on purpose: a fake must be able to misbehave at the socket level
(drop the connection, die in the middle of a chunked body, stall before the headers), which a framework
like FastAPI hides from us, and it must start in milliseconds inside any test without extra packages.
"""
from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Literal

FaultKind = Literal["status", "sleep", "drop", "die"]


@dataclass
class Fault:
    """One injected misbehaviour.

    kind:
      - "status": answer `status` with the API's own error body (500, 429, 400, ...).
      - "sleep": wait `seconds` before answering (then answer normally) — a timeout for the client.
      - "drop": accept the request, then close the connection without a byte of response.
      - "die": stream `after_chunks` events, then close the connection mid-body (non-stream: like "drop").
    times: how many requests it applies to (None = every request until `clear_faults()`).
    paths: only requests whose path starts with one of these (empty = all model-calling paths).
    """

    kind: FaultKind
    status: int = 500
    message: str = "injected fault"
    seconds: float = 0.0
    after_chunks: int = 1
    times: int | None = 1
    paths: tuple[str, ...] = ()
    retry_after: str = "0"        # the `retry-after` header sent with a 429


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _DropConnection(Exception):
    """Raised inside a handler to close the socket without finishing the response."""


@dataclass
class FakeServer:
    """A running fake. `url` is the base URL (no trailing slash, no /v1)."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    chunk_delay: float = 0.0      # seconds between streamed events (to test cancellation)
    aborted: int = 0              # streams the client hung up on before the end
    _faults: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def fail(self, kind: FaultKind, **kw: Any) -> Fault:
        """Queue a fault for the next matching request(s); returns it."""
        fault = Fault(kind, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in list(self._faults):
                if fault.paths and not path.startswith(fault.paths):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def stop_listening(self) -> None:
        """Close the listening socket: new connections to `url` are refused (connect error)."""
        if self._httpd is not None:
            self._stop.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def wait(self, seconds: float) -> None:
        """Sleep that ends early when the server stops (so shutdown never waits on a stalled handler)."""
        self._stop.wait(seconds)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Handler(BaseHTTPRequestHandler):
    """Base request handler: JSON in/out, chunked streaming, fault hooks. Subclasses set `routes`."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle on, the client's delayed ACK adds ~40 ms
    disable_nagle_algorithm = True
    fake: FakeServer
    routes: dict[tuple[str, str], str] = {}   # (method, path prefix) -> method name

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        return None

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass    # clients hanging up on keep-alive connections is normal

    # --- helpers -------------------------------------------------------------------------------------
    def read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def read_json(self) -> Any:
        raw = self.read_body()
        return json.loads(raw) if raw else {}

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def stream(self, content_type: str, parts: Iterator[bytes], fault: Fault | None = None) -> None:
        """Write `parts` as a chunked body; a "die" fault cuts the connection after N parts."""
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        try:
            for n, part in enumerate(parts):
                if fault is not None and fault.kind == "die" and n >= fault.after_chunks:
                    raise _DropConnection
                if n and self.fake.chunk_delay:
                    self.fake.wait(self.fake.chunk_delay)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            with self.fake._lock:
                self.fake.aborted += 1
            raise

    def apply_fault(self, fault: Fault | None, error_body: Callable[[int, str], Any]) -> bool:
        """Handle faults that act before the response starts; True when the request is answered."""
        if fault is None:
            return False
        if fault.kind == "sleep":
            self.fake.wait(fault.seconds)
            return False
        if fault.kind == "drop" or (fault.kind == "die" and not self.wants_stream()):
            raise _DropConnection
        if fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.status == 429 else None
            self.send_json(fault.status, error_body(fault.status, fault.message), headers)
            return True
        return False

    def wants_stream(self) -> bool:
        return bool(getattr(self, "_body", {}).get("stream", False)) if isinstance(
            getattr(self, "_body", None), dict) else False

    # --- dispatch ------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        for (method, prefix), name in self.routes.items():
            if method == self.command and (path == prefix or (prefix.endswith("/") and path.startswith(prefix))):
                try:
                    getattr(self, name)(path)
                except _DropConnection:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
        self.read_body()
        self.not_found(path)

    def not_found(self, path: str) -> None:
        self.send_json(404, {"error": f"no route for {self.command} {path}"})

    def record(self, body: Any) -> None:
        self._body = body
        self.fake.requests.append(Recorded(self.command, self.path, dict(self.headers), body))

    do_GET = do_POST = do_HEAD = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    # the stdlib's backlog of 5 refuses connections under a few dozen concurrent clients; real servers take more
    request_queue_size = 256


def start(handler_cls: type[Handler], fake: FakeServer) -> FakeServer:
    """Serve `handler_cls` for `fake` on 127.0.0.1, port 0, in a daemon thread."""
    handler = type(handler_cls.__name__, (handler_cls,), {"fake": fake})
    httpd = _Server(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    fake._httpd = httpd
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    fake._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                    name=f"fake-{handler_cls.__name__}", daemon=True)
    fake._thread.start()
    return fake
