"""`engrain serve --workers N`: N uvicorn processes share the port, each with the config and key it was given."""
from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.fakes import hosted_server
from tests.fakes.base import closed_port_url


def _descendants(pid: int) -> set[int]:
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(c) for c in (task / "children").read_text().split()}
    return children | {d for c in children for d in _descendants(c)}


def test_two_workers_serve_routed_completions_with_the_key(tmp_path):
    with hosted_server() as fake:
        config = tmp_path / "router.toml"
        config.write_text(f"""[router]
[[router.models]]
name = "weak"
provider = "litellm"
model = "openai/fake-weak"
api_base = "{fake.url}/v1"
api_key = "k"
[[router.tiers]]
name = "local"
models = ["weak"]
[[router.tiers]]
name = "hosted"
models = ["weak"]
""")
        url = closed_port_url()                          # free until the router binds it
        port = url.rsplit(":", 1)[1]
        proc = subprocess.Popen([sys.executable, "-c", "from engrain.cli import main; main()", "serve", "--config",
                                 str(config), "--port", port, "--workers", "2", "--api-key", "sesame"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, proc.stdout.read()
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "router did not start"
                time.sleep(0.3)
            assert len([p for p in _descendants(proc.pid)
                        if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]) == 2

            client = openai.OpenAI(base_url=url + "/v1", api_key="sesame", max_retries=0)

            def ask(i: int) -> tuple[str, str]:
                raw = client.chat.completions.with_raw_response.create(
                    model="auto", max_tokens=8, messages=[{"role": "user", "content": f"rename variable {i}"}])
                return raw.parse().choices[0].message.content, raw.headers["x-engrain-model"]

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(ask, range(16)))
            assert answers == [(f"[fake-weak] you said: rename variable {i}", "weak") for i in range(16)]
            assert httpx.post(url + "/v1/chat/completions", json={"model": "auto", "messages": []}).status_code == 401
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
