"""Issue 14, point 3: `engrain generate` ends with litellm's token and cost totals ("unknown" when litellm cannot
price the model), and a provider that keeps failing shows its real error (tenacity is installed for litellm's
retries), through the CLI against a loopback OpenAI-protocol server."""
from __future__ import annotations

import json
import re
import socket

import pytest

from tests.datagen.conftest import varied


@pytest.mark.parametrize("model, cost", [("openai/gpt-4o-mini", r"cost \$0\.0000\d+"),
                                         ("openai/engrain-local-writer",
                                          r"cost unknown \(litellm has no price for openai/engrain-local-writer\)")])
def test_generate_reports_tokens_and_cost(ws, cli, fake_openai, model, cost):
    server = fake_openai([json.dumps({**varied(i), "category": "craftsmanship"}) for i in range(3)])

    result = cli("generate", "-c", "craftsmanship", "-n", "2", "-m", model, "-k", "1",
                 "--api-base", server.api_base, "-w", ws.root)

    assert result.exit_code == 0, result.output
    assert "2 model calls, 20 prompt + 20 completion tokens" in result.stdout  # the fake reports 10 + 10 per call
    assert re.search(cost, result.stdout), result.stdout


def test_a_provider_that_refuses_connections_shows_the_cause(ws, cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    result = cli("generate", "-c", "craftsmanship", "-n", "1", "-m", "openai/gpt-4o-mini", "-k", "1",
                 "--api-base", f"http://127.0.0.1:{port}/v1", "-w", ws.root)

    assert result.exit_code == 1
    assert "tenacity" not in result.output
    assert "Connection" in result.stderr and "model call failed" in result.stderr
