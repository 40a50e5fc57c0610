"""Driving the real Claude Code CLI against the router in tests: the CLI runner, a recorder at the router's
door (what Claude Code sent, what the router answered), and a loopback HTTPS site for WebFetch."""
from __future__ import annotations

import datetime
import functools
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLAUDE = REPO / ".tools" / "node_modules" / ".bin" / "claude"


def claude_cli() -> Path:
    if not CLAUDE.exists():
        pytest.fail(f"{CLAUDE} is missing: scripts/test.sh installs Claude Code with npm")
    return CLAUDE


def machine_cache() -> str:
    """engrain's once-per-machine caches (the static MiniLM) stay shared when HOME is a throwaway."""
    return os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")


@dataclass
class Result:
    code: int
    out: dict
    stderr: str


def run_claude(prompt: str | None, *, cwd: Path, home: Path, base_url: str | None = None, args: tuple = (),
               env: dict | None = None, stdin: str | None = None, timeout: float = 240) -> Result:
    """`claude -p PROMPT --output-format json` with a throwaway HOME; the prompt comes on stdin when None."""
    full_env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_API_KEY": "key-for-the-router",
                "DISABLE_AUTOUPDATER": "1", "IS_SANDBOX": "1", "XDG_CACHE_HOME": machine_cache(), **(env or {})}
    if base_url:
        full_env["ANTHROPIC_BASE_URL"] = base_url
    cmd = [str(claude_cli()), "-p", *([prompt] if prompt is not None else []), "--output-format", "json", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, input=stdin, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    out = json.loads(lines[-1]) if lines else {}
    return Result(proc.returncode, out, proc.stderr)


@dataclass
class Seen:
    path: str
    body: bytes = b""
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)              # the router's answer
    request_headers: dict[str, str] = field(default_factory=dict)      # what the client sent

    def json(self) -> Any:
        return json.loads(self.body)


class Door:
    """An ASGI wrapper that records every request the router receives and the status and headers it answers."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.app: Any = None

    def wrap(self, app: Any) -> "Door":
        self.app = app
        return self

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry = Seen(scope["path"], request_headers={k.decode(): v.decode() for k, v in scope["headers"]})
        self.seen.append(entry)

        async def recording_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                entry.body += message.get("body", b"")
            return message

        async def recording_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                entry.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
            await send(message)

        await self.app(scope, recording_receive, recording_send)

    def messages(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v1/messages"]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (WebFetch only fetches https) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None


def https_site(folder: Path, cert: Path, key: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    """Serve `folder` over https on loopback; returns its base URL and the server (call shutdown())."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"https://127.0.0.1:{httpd.server_address[1]}", httpd
