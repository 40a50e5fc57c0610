"""The review page under test: a workspace with telling examples, the page served by the real CLI on loopback,
and headless Chromium (Debian's chromium + chromium-driver, driven by selenium; scripts/test.sh installs them)."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import datagen
import httpx
import pytest

from tests.server.conftest import REPO, TEST_TOML, valid_example

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "build" / "screenshots"
# The dataset commands as their own program (as tests/datagen does): `engrain review --web ...`.
ENGRAIN = [sys.executable, "-c",
           "import typer; from engrain import cmd_dataset; app = typer.Typer(); cmd_dataset.register(app); app()"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1280,1000"]

GREP = {"type": "function", "function": {
    "name": "Grep", "description": "Search file contents.",
    "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}},
                   "required": ["pattern"], "additionalProperties": False}}}

KNOWLEDGE = """# Retries

## Backoff
Retry idempotent calls with exponential backoff and jitter; never retry a POST that is not idempotent.
"""

# Everything a model might write that a browser would run if the page did not escape it.
PAYLOADS = ['<script>window.__pwned = "script"</script>',
            '<img src=x onerror="window.__pwned = \'img\'">',
            '[click me](javascript:window.__pwned=\'md-link\')',
            '<a id="evil" href="javascript:window.__pwned=\'a\'">click</a>',
            '</textarea><script>window.__pwned = "textarea"</script>',
            '<svg onload="window.__pwned = \'svg\'"></svg>']


def tool_example(chunk_id: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You are the project's coding agent."},
            {"role": "user", "content": "Where do we retry HTTP calls? The retry loop in the payment client looks wrong."},
            {"role": "assistant", "content": "Let me search for the retry loop.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "Grep", "arguments": json.dumps({"pattern": "def retry", "path": "src/"})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "src/payments/client.py:41:def retry(call, attempts=5):"},
            {"role": "assistant", "content": "It is in `src/payments/client.py`. It sleeps a fixed second; back off "
             "exponentially with jitter instead:\n\n```python\nimport random, time\n\ndef retry(call, attempts=5):\n"
             "    for n in range(attempts):\n        try:\n            return call()\n        except TimeoutError:\n"
             "            time.sleep(2 ** n + random.random())\n    return call()\n```"},
        ],
        "tools": [GREP], "category": "tool-use", "source_refs": [chunk_id], "meta": {"language": "python"},
    }


def hostile_example() -> dict:
    return {
        "messages": [
            {"role": "user", "content": "Render this for me: " + " ".join(PAYLOADS)},
            {"role": "assistant", "content": "As text: " + " ".join(PAYLOADS) + "\n\n```html\n" + PAYLOADS[0] + "\n```",
             "tool_calls": [{"id": "call_x", "type": "function", "function": {
                 "name": "Grep", "arguments": json.dumps({"pattern": PAYLOADS[1]})}}]},
            {"role": "tool", "tool_call_id": "call_x", "content": PAYLOADS[4]},
            {"role": "assistant", "content": "Done " + PAYLOADS[5]},
        ],
        "tools": [GREP], "category": "code-review", "meta": {"note": PAYLOADS[1]},
    }


def make_workspace(root: Path) -> datagen.Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "template.toml").write_text(TEST_TOML)
    datagen.init_workspace(root / "project", template=root / "template.toml")
    ws = datagen.find_workspace(root / "project")
    (ws.root / "retries.md").write_text(KNOWLEDGE)
    chunk = datagen.add_knowledge(ws, [ws.root / "retries.md"])[-1]
    verdicts = datagen.submit(ws, [tool_example(chunk.id)], generator="claude-code")
    verdicts += datagen.submit(ws, [valid_example(i, "code-review" if i % 3 == 0 else "tool-use")
                                    for i in range(1, 7)], generator="cli")
    verdicts += datagen.submit(ws, [hostile_example()], generator=PAYLOADS[1])
    assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts if not v.accepted]
    return ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`engrain review --web` in a subprocess, on a free loopback port."""

    def __init__(self, ws: datagen.Workspace, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = ws.state_dir / f"web-{self.port}.log"
        self.process = subprocess.Popen(
            [*ENGRAIN, "review", "--web", "--port", str(self.port), "--workspace", str(ws.root), *extra],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the review page exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"the review page did not answer within 180 s: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def chromium(profile: Path):
    """Headless Chromium through chromedriver, with a fresh profile and nothing that reaches the network."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing: run scripts/test.sh, or "
                    "`apt-get install -y chromium chromium-driver`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium never looks for a browser or driver to download
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def version_of(html: str) -> str:
    return re.search(r'name="version" value="(\d+)"', html).group(1)


def named_client(base: str, name: str, **kwargs) -> tuple[httpx.Client, str]:
    """An HTTP client that told the page its reviewer name; returns it with its CSRF field."""
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=180, **kwargs)
    first = client.get("/")
    assert first.status_code == 200, first.text
    client.post("/reviewer", data={"csrf": csrf_of(first.text), "name": name, "next": "/"})
    page = client.get("/")
    assert name in page.text
    return client, csrf_of(page.text)
